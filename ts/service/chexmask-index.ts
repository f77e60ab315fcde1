/**
 * CheXmask rows for a long-running service. One streaming pass over the CSV at start records, per id,
 * where its row lies in the file (byte offset, length) and its Dice; a request then reads and parses
 * only that row.
 *
 * Why byte offsets and not parsed rows: the server cannot know which ids will be asked for, so it must
 * be ready for all of them (243 k rows in CheXmask's MIMIC-CXR-JPG file). Parsed landmarks alone are
 * 240 float64 per row (≈ 2 KB with the object, ≈ 0.5 GB in all) and the RLE cells that the `rle`
 * contour source needs are most of the multi-GB file. The offset table holds an id string, two numbers
 * and a float per row (measured 111 B, 26 MB in all), serves either contour source, and a lookup costs one
 * positioned read of one row plus its parse — far below one model call.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { z } from 'zod';
import { DataError } from '../common/errors.js';
import { statRegularFile } from '../common/files.js';
import { parseOptions } from '../common/options.js';
import {
  type ChexmaskRow,
  chexmaskColumnIndex,
  claimsId,
  diceOf,
  JoinOptionsSchema,
  parseChexmaskRecord,
} from '../data/chexmask.js';
import { readRecordAt } from '../data/chexmask-records.js';
import { isGzip } from '../data/csv.js';
import { CsvScanner, KEEP } from '../data/csvscan.js';

/** Options of `ChexmaskIndex.build`. */
export interface ChexmaskIndexOptions {
  /**
   * Rows with `Dice RCA (Mean)` below this are refused at lookup (reason `low-dice`). In [0, 1]; default
   * 0.7, as in joinChexmask.
   */
  minDice?: number;
  /** Keep the RLE cells in looked-up rows (needed by the `rle` contour source). Default false. */
  keepRle?: boolean;
  /** Id column; default: the first of CHEXMASK_ID_COLUMNS in the header. */
  idColumn?: string;
  /** Called every 10,000 rows while the index is built. */
  onProgress?: (rowsRead: number) => void;
}

/** The options' schema (the callback aside): minDice is joinChexmask's, so both filter alike. */
const IndexOptionsSchema = z
  .object({
    minDice: JoinOptionsSchema.shape.minDice,
    keepRle: z.boolean().default(false),
    idColumn: z.string().optional(),
  })
  .strict();

/** What building the index read. */
export interface ChexmaskIndexSummary {
  rows: number;
  /**
   * Rows of an id that are not its row. The row served is the one joinChexmask keeps (claimsId: the
   * first whose Dice passes minDice, else the first).
   */
  duplicates: number;
  /** Rows whose id cell was empty. */
  noId: number;
  seconds: number;
}

/** Growable columns of the offset table (typed arrays: no per-row objects). */
class Table {
  offset = new Float64Array(1024);
  length = new Uint32Array(1024);
  dice = new Float64Array(1024); // Float64: a Dice of 0.7 must not round below a 0.7 threshold
  size = 0;
  set(k: number, offset: number, length: number, dice: number): void {
    this.offset[k] = offset;
    this.length[k] = length;
    this.dice[k] = dice;
  }
  push(offset: number, length: number, dice: number): number {
    if (this.size === this.offset.length) {
      const grow = <T extends Float64Array | Uint32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.offset = grow(this.offset);
      this.length = grow(this.length);
      this.dice = grow(this.dice);
    }
    this.offset[this.size] = offset;
    this.length[this.size] = length;
    this.dice[this.size] = dice;
    return this.size++;
  }
}

/**
 * A CheXmask CSV indexed by image id (byte offsets, not rows), so that a service reads one image's row on
 * demand.
 */
export class ChexmaskIndex {
  /** Set by close(): a later row() is refused by name, not with the closed handle's bare EBADF. */
  private closed = false;

  private constructor(
    private readonly csvPath: string,
    private readonly file: FileHandle,
    private readonly header: string[],
    private readonly idColumn: string,
    private readonly idIdx: number,
    private readonly ids: Map<string, number>,
    private readonly table: Table,
    private readonly options: { minDice: number; keepRle: boolean },
    readonly summary: ChexmaskIndexSummary,
  ) {}

  /**
   * Builds the index in one streaming pass. A gzipped CSV is refused: offsets need the plain file.
   * @throws {TypeError|RangeError} (rejects) an unknown option or a bad option value (`minDice`
   *   outside [0, 1]), naming it (parseOptions).
   * @throws {DataError} (rejects) the CSV cannot be read or is not a CheXmask CSV, naming the file.
   */
  static async build(csvPath: string, options: ChexmaskIndexOptions = {}): Promise<ChexmaskIndex> {
    const t0 = performance.now();
    const { onProgress: _p, ...schemaOptions } = options;
    const {
      minDice,
      keepRle,
      idColumn: wantedIdColumn,
    } = parseOptions(IndexOptionsSchema, schemaOptions, 'ChexmaskIndex.build');
    await statRegularFile(csvPath); // a FIFO would block the open below
    const file = await open(csvPath, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new DataError('missing-file', `cannot open: ${e.code ?? e.message}`, { file: csvPath });
    });
    try {
      if (isGzip(csvPath)) {
        throw new DataError('bad-csv', 'gzipped CheXmask CSV: gunzip it once, rows are read by byte offset', {
          file: csvPath,
        });
      }
      const ids = new Map<string, number>();
      const table = new Table();
      let rowsRead = 0;
      let duplicates = 0;
      let noId = 0;
      const csv = await CsvScanner.open(csvPath);
      const header = csv.header;
      let idColumn: string;
      let idIdx: number;
      try {
        const cols = chexmaskColumnIndex(header, csvPath, wantedIdColumn);
        idColumn = cols.idColumn;
        idIdx = cols.id;
        // Only the id and Dice cells are decoded; the scanner steps over the rest at memchr speed.
        const plan = new Uint8Array(header.length);
        plan[cols.diceMean] = KEEP;
        plan[idIdx] = KEEP;
        for (let rec = await csv.next(plan); rec; rec = await csv.next(plan)) {
          rowsRead++;
          if (rowsRead % 10000 === 0) options.onProgress?.(rowsRead);
          const id = rec.values[idIdx]?.toString('utf8').trim() ?? '';
          const dice = diceOf(rec.values[cols.diceMean]);
          const k = id ? ids.get(id) : undefined;
          if (!id) noId++;
          else if (k === undefined) ids.set(id, table.push(rec.start, rec.end - rec.start, dice));
          else {
            // the id's row is its first passing the threshold, as in joinChexmask
            duplicates++;
            if (!claimsId(table.dice[k]!, minDice) && claimsId(dice, minDice)) {
              table.set(k, rec.start, rec.end - rec.start, dice);
            }
          }
        }
      } catch (e) {
        if (e instanceof DataError) throw e;
        throw new DataError(
          'bad-csv',
          `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          { file: csvPath },
        );
      } finally {
        await csv.close();
      }
      options.onProgress?.(rowsRead);
      return new ChexmaskIndex(
        csvPath,
        file,
        header,
        idColumn,
        idIdx,
        ids,
        table,
        { minDice, keepRle },
        { rows: ids.size, duplicates, noId, seconds: (performance.now() - t0) / 1000 },
      );
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  /** The number of ids in the index. */
  get size(): number {
    return this.ids.size;
  }

  /** Whether the CSV has a row for `id`. */
  has(id: string): boolean {
    return this.ids.has(id);
  }

  /**
   * The parsed row of `id`. Throws a DataError: reason `unknown-id` (no row), `low-dice` (below the
   * quality threshold), or the parse reason of a malformed row (`bad-landmarks`, `bad-size`, …).
   * @throws {Error} (rejects) the index is closed.
   */
  async row(id: string): Promise<ChexmaskRow> {
    if (this.closed) throw new Error(`the ChexmaskIndex of ${this.csvPath} is closed`);
    const k = this.ids.get(id);
    if (k === undefined) throw new DataError('unknown-id', 'no CheXmask row', { file: this.csvPath, id });
    // Errors name the CSV and the id (the HTTP layer answers with fixed texts only).
    const where = { file: this.csvPath, id };
    const dice = this.table.dice[k]!;
    // a Dice that is not a number is refused by the parse below (bad-dice), as in the join
    if (!claimsId(dice, this.options.minDice) && !Number.isNaN(dice)) {
      throw new DataError('low-dice', `Dice RCA (Mean) ${dice.toFixed(3)} < ${this.options.minDice}`, where);
    }
    const values = await readRecordAt(
      this.file,
      { offset: this.table.offset[k]!, length: this.table.length[k]! },
      { idIdx: this.idIdx, id, columns: this.header.length },
      where,
    );
    const rec: Record<string, string> = {};
    this.header.forEach((c, i) => {
      rec[c] = values[i]!;
    });
    return parseChexmaskRecord(rec, { keepRle: this.options.keepRle, idColumn: this.idColumn }, where);
  }

  /** Closes the CSV file (after the reads in flight); a later `row()` rejects. */
  async close(): Promise<void> {
    this.closed = true;
    await this.file.close();
  }
}
