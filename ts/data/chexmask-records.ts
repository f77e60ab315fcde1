/**
 * A CheXmask row's record read back from the CSV by its byte range (one positioned read), for what is
 * too large to hold for every row: the RLE cells of a join with `locateRle` (cache builds with the
 * `rle` source: ≈ 55 KB per row at original resolution, ≈ 13 GB for MIMIC-CXR-JPG) and the rows of
 * the service's offset index (ChexmaskIndex).
 */
import { type FileHandle, open } from 'node:fs/promises';
import { DataError, type DataErrorWhere } from '../common/errors.js';
import { type ChexmaskColumnIndex, type ChexmaskRow, chexmaskColumnIndex } from './chexmask.js';
import { CsvScanner } from './csvscan.js';
import { REGIONS, type Region } from './landmarks.js';

/** Where a record lies in the plain (not gzipped) CSV: its first byte and its length, line break included. */
export interface RecordRange {
  offset: number;
  length: number;
}

/**
 * The cells of the record at `at` in the open CSV, which must be the record of `id` (its id cell,
 * trimmed) with one cell per header column.
 * @throws {DataError} naming `where` (the file and id): `stale-index` when the bytes there are not the
 *   id's record (the file changed since its offsets were taken), `bad-row` on a cell count other than
 *   the header's.
 */
export async function readRecordAt(
  file: FileHandle,
  at: RecordRange,
  o: { idIdx: number; id: string; columns: number },
  where: DataErrorWhere,
): Promise<string[]> {
  const buf = Buffer.allocUnsafe(at.length);
  const { bytesRead } = await file.read(buf, 0, buf.length, at.offset);
  const values = CsvScanner.splitRecord(buf.subarray(0, bytesRead));
  // The file changed since the offsets were taken: refuse rather than use another image's row.
  if (!values || values[o.idIdx]?.trim() !== o.id)
    throw new DataError('stale-index', 'the CheXmask CSV changed since its rows were located', where);
  if (values.length !== o.columns)
    throw new DataError('bad-row', `${values.length} cells, header has ${o.columns}`, where);
  return values;
}

/** The RLE cells of located rows (joinChexmask with `locateRle`), read from their CSV on demand. */
export class ChexmaskRecords {
  private constructor(
    readonly csvPath: string,
    private readonly file: FileHandle,
    private readonly cols: ChexmaskColumnIndex,
    private readonly columns: number,
  ) {}

  /**
   * Opens the CSV the rows were joined from (its header read again for the column indexes).
   * @throws {DataError} (rejects) the file cannot be read or is not a CheXmask CSV, naming it.
   */
  static async open(csvPath: string, idColumn?: string): Promise<ChexmaskRecords> {
    const csv = await CsvScanner.open(csvPath);
    let header: string[];
    try {
      header = csv.header;
    } finally {
      await csv.close();
    }
    const cols = chexmaskColumnIndex(header, csvPath, idColumn);
    const file = await open(csvPath, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new DataError('missing-file', `cannot open: ${e.code ?? e.message}`, { file: csvPath });
    });
    return new ChexmaskRecords(csvPath, file, cols, header.length);
  }

  /**
   * `row` with its RLE cells (`rle`), the text a join with keepRle holds; a row that holds them, or
   * that was not located, comes back as it is.
   * @throws {DataError} (rejects) `stale-index` / `bad-row` (readRecordAt), naming the CSV and id.
   */
  async withRle(row: ChexmaskRow): Promise<ChexmaskRow> {
    if (row.rle || !row.record) return row;
    const values = await readRecordAt(
      this.file,
      row.record,
      { idIdx: this.cols.id, id: row.dicomId, columns: this.columns },
      { file: this.csvPath, id: row.dicomId },
    );
    const rle = {} as Record<Region, string>;
    for (const r of REGIONS) rle[r] = values[this.cols.rle[r]]!;
    return { ...row, rle };
  }

  /** Closes the CSV (after the reads in flight). */
  async close(): Promise<void> {
    await this.file.close();
  }
}
