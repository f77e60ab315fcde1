/**
 * The row loop every label table shares (MIMIC's metadata, chexpert and split CSVs, and the other
 * datasets' tables): the CSV opened with its required columns and streamed, a row refused for a bad id
 * or a short line counted under its reason, an identical repeat of a key skipped (DuplicateRows), and
 * what is left handed to the caller with its cells trimmed.
 */
import type { ReasonCounter } from '../common/errors.js';
import { type CsvReader, openCsv } from './csv.js';
import { DuplicateRows } from './duplicates.js';

/** One record of a table as the rules see it. */
export interface TableRow {
  /** 1-based data row number (the header is row 0). */
  row: number;
  values: string[];
  /** The trimmed cell of column `i` ('' past the end of a short row, or for a column that is absent, -1). */
  cell(i: number): string;
}

/** Why a row is dropped: the reason it is counted under and, usually, a message naming file and row. */
export interface Refusal {
  drop: string;
  message?: string;
}

/** What a table's reader says about each row, in order: refuse it, or give its key and what it holds. */
export interface TableRules<T> {
  /** The key's name in duplicate messages ("dicom_id", "Image Index"). */
  keyName: string;
  /** Checks that come before the duplicate check (ids, row length); a row that passes gives its key. */
  read(r: TableRow): Refusal | { key: string; value: T };
  /** A row that passed and is the first of its key. */
  take(value: T, r: TableRow, key: string): void;
}

/** Counts of dropped rows and of identical repeats, by reason and by file. */
export interface RowCounters {
  dropped: ReasonCounter;
  duplicates: ReasonCounter;
}

/**
 * Streams `file` through `rules` (made once the header is known, so they can look their columns up).
 * @returns the number of data rows read, refused and repeated ones included.
 * @throws {DataError} a missing file or column, a bad CSV, or a repeated key whose rows disagree.
 */
export async function readTable<T>(
  file: string,
  columns: readonly string[],
  counters: RowCounters,
  makeRules: (csv: CsvReader) => TableRules<T>,
): Promise<number> {
  const csv = await openCsv(file, columns);
  const rules = makeRules(csv);
  const seen = new DuplicateRows(file, rules.keyName, csv.header, counters.duplicates);
  let rows = 0;
  for await (const { row, values } of csv.records) {
    rows++;
    const r: TableRow = { row, values, cell: (i) => (values[i] ?? '').trim() };
    const read = rules.read(r);
    if ('drop' in read) {
      counters.dropped.add(read.drop, read.message);
      continue;
    }
    if (
      !seen.take(
        read.key,
        row,
        values.map((v) => v.trim()),
      )
    )
      continue;
    rules.take(read.value, r, read.key);
  }
  return rows;
}

/** The message of a row shorter than the header (it would otherwise read as blank cells), or null. */
export function shortRow(where: string, r: TableRow, header: readonly string[]): string | null {
  return r.values.length < header.length
    ? `${where}: ${r.values.length} field(s), the header has ${header.length}`
    : null;
}
