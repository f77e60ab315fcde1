/** Streaming CSV reading (csv-parse over an optional gunzip), with header checks and file-named errors. */
import { closeSync, createReadStream, existsSync, openSync, readSync } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { parse } from 'csv-parse';
import { DataError } from '../common/errors.js';
import { statRegularFile } from '../common/files.js';

export interface CsvRecord {
  /** 1-based data row number (the header is row 0). */
  row: number;
  values: string[];
}

export interface CsvReader {
  header: string[];
  /** Column index by name; throws a DataError naming the file if absent. */
  col(name: string): number;
  records: AsyncIterable<CsvRecord>;
}

/** Gzip is recognised by its magic bytes, not the file name. */
export function isGzip(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(2);
    const n = readSync(fd, b, 0, 2, 0);
    return n === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/** Finds `<base>.csv.gz` or `<base>.csv` (first that exists). */
export function findCsv(pathWithoutExt: string): string {
  for (const ext of ['.csv.gz', '.csv']) {
    if (existsSync(pathWithoutExt + ext)) return pathWithoutExt + ext;
  }
  throw new DataError('missing-file', `neither ${pathWithoutExt}.csv.gz nor ${pathWithoutExt}.csv exists`, {
    file: pathWithoutExt,
  });
}

/** Largest record openCsv holds by default: MIMIC's tables have rows of well under 1 KB. */
export const MAX_CSV_RECORD_CHARS = 16 << 20;

/** A CSV file as parsed records: read → (gunzip) → csv-parse, the first failure of any stage kept. */
interface ParsedStream {
  source: ReturnType<typeof createReadStream>;
  parser: ReturnType<typeof parse>;
  it: AsyncIterator<string[]>;
  /** The stream's own failure (I/O, gzip) if any, else `e` as a DataError naming the file (and row). */
  toDataError: (e: unknown) => Error;
  /** The stream's failure, once one happened. */
  failure: () => Error | null;
}

function parsedStream(path: string, gz: boolean, maxRecordChars: number): ParsedStream {
  const source = createReadStream(path, { highWaterMark: 1 << 20 });
  const parser = parse({
    bom: true,
    relax_column_count: true,
    skip_empty_lines: true,
    max_record_size: maxRecordChars,
  });
  let failed: Error | null = null;
  const fail = (e: Error) => {
    if (!failed) {
      const msg = /unexpected end of file/i.test(e.message)
        ? 'truncated gzip stream (unexpected end of file)'
        : `${gz && /incorrect header|invalid|zlib/i.test(e.message) ? 'corrupt gzip: ' : ''}${e.message}`;
      failed = new DataError(gz ? 'bad-gzip' : 'bad-csv', msg, { file: path });
    }
    parser.destroy(failed);
  };
  source.on('error', fail);
  if (gz) {
    const gunzip = createGunzip();
    gunzip.on('error', fail);
    source.pipe(gunzip).pipe(parser);
  } else source.pipe(parser);
  const toDataError = (e: unknown): Error => {
    if (failed) return failed;
    if (e instanceof DataError) return e;
    const err = e as Error & { records?: number; code?: string };
    // `records` counts the records before this one, the header being record 0: it is this one's data
    // row. (`lines` counts physical lines, quoted newlines included; and the error can surface while
    // the reader is still at an earlier record, as csv-parse parses a whole chunk ahead.)
    if (err.code === 'CSV_MAX_RECORD_SIZE') {
      const row = err.records ?? 0;
      return new DataError(
        'too-large',
        `${row === 0 ? 'the header' : 'a record'} exceeds ${maxRecordChars} characters`,
        { file: path, row },
      );
    }
    return new DataError('bad-csv', `CSV parse error: ${err.message}`, { file: path });
  };
  const it = parser[Symbol.asyncIterator]() as AsyncIterator<string[]>;
  return { source, parser, it, toDataError, failure: () => failed };
}

/** The records after the header, numbered from 1; the file is closed however iteration ends. */
function recordsAfterHeader(s: ParsedStream): AsyncIterable<CsvRecord> {
  return {
    async *[Symbol.asyncIterator]() {
      let row = 0;
      try {
        while (true) {
          const r = await s.it.next();
          if (r.done) break;
          row++;
          yield { row, values: r.value };
        }
      } catch (e) {
        throw s.toDataError(e);
      } finally {
        s.source.destroy();
      }
      const failed = s.failure();
      if (failed) throw failed;
    },
  };
}

/**
 * Opens a CSV (gzip detected by magic bytes) and reads its header. `required` columns must all be
 * present or a DataError lists the missing ones. Records are streamed; the file is never loaded whole,
 * and a record over `maxRecordChars` (one huge field, or a file without line breaks) is a DataError
 * naming the file and row instead of unbounded memory.
 * @throws {DataError} (rejects) `missing-file`, `bad-csv` (empty file / parse error), `bad-gzip`,
 *   `too-large` (header record over `maxRecordChars`) or `missing-column`; iterating `records` throws
 *   the same DataErrors for later rows, and `col(name)` throws `missing-column`.
 */
export async function openCsv(
  path: string,
  required: readonly string[] = [],
  { maxRecordChars = MAX_CSV_RECORD_CHARS }: { maxRecordChars?: number } = {},
): Promise<CsvReader> {
  if (!existsSync(path)) throw new DataError('missing-file', 'file does not exist', { file: path });
  await statRegularFile(path); // a FIFO would block the read, /dev/zero never end
  const s = parsedStream(path, isGzip(path), maxRecordChars);
  let first: IteratorResult<string[]>;
  try {
    first = await s.it.next();
  } catch (e) {
    throw s.toDataError(e);
  }
  if (first.done) {
    throw s.failure() ?? new DataError('bad-csv', 'file is empty (no header row)', { file: path });
  }
  const header = first.value.map((h) => h.trim());
  const index = new Map<string, number>();
  header.forEach((h, i) => {
    index.set(h, i);
  });
  const missing = required.filter((r) => !index.has(r));
  if (missing.length) {
    s.parser.destroy();
    s.source.destroy();
    throw new DataError(
      'missing-column',
      `missing column(s) ${missing.map((m) => `"${m}"`).join(', ')}; header is: ${header.join(',')}`,
      { file: path },
    );
  }
  return {
    header,
    col(name: string) {
      const i = index.get(name);
      if (i === undefined) throw new DataError('missing-column', `missing column "${name}"`, { file: path });
      return i;
    },
    records: recordsAfterHeader(s),
  };
}
