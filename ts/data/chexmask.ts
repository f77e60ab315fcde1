/**
 * CheXmask join: stream a per-dataset CheXmask CSV (several GB for MIMIC-CXR-JPG) and keep only the
 * rows whose id is wanted, parsed and validated. Rows are refused, counted and reported per reason;
 * nothing here ever throws for a single bad row. The file is read by the chunked scanner (csvscan.ts):
 * the id cell is looked at first, unwanted rows are skipped at memchr speed, and cells the contour
 * source does not need are never decoded.
 */
import { z } from 'zod';
import { DataError, type DataErrorWhere, ReasonCounter } from '../common/errors.js';
import { parseOptions } from '../common/options.js';
import { isGzip } from './csv.js';
import { CsvScanner, isBlankCell, KEEP, KEY, PEEK, type ScannedRecord } from './csvscan.js';
import {
  checkLandmarkRange,
  type Landmarks,
  landmarksInRange,
  NUM_LANDMARKS,
  parseLandmarks,
  parseLandmarksBytes,
  REGIONS,
  type Region,
  scanLandmarkNumbers,
} from './landmarks.js';
import { MAX_MASK_PIXELS, parseRle, rleBytesValid } from './rle.js';
import { WantedIds } from './wanted-ids.js';

export const CHEXMASK_COLUMNS = {
  diceMean: 'Dice RCA (Mean)',
  diceMax: 'Dice RCA (Max)',
  landmarks: 'Landmarks',
  leftLung: 'Left Lung',
  rightLung: 'Right Lung',
  heart: 'Heart',
  height: 'Height',
  width: 'Width',
} as const;
/** Id column names used by the CheXmask files of the different datasets, tried in this order. */
export const CHEXMASK_ID_COLUMNS = ['dicom_id', 'image_id', 'Image Index', 'Path', 'ImageID'] as const;

/**
 * The id column of a CheXmask header (the given one, or the first of CHEXMASK_ID_COLUMNS present);
 * throws a DataError naming the file when it or a required column is missing.
 */
export function chexmaskIdColumn(header: readonly string[], file: string, idColumn?: string): string {
  const id = idColumn ?? CHEXMASK_ID_COLUMNS.find((c) => header.includes(c)) ?? 'dicom_id';
  const required = [id, ...Object.values(CHEXMASK_COLUMNS).filter((c) => c !== CHEXMASK_COLUMNS.diceMax)];
  const missing = required.filter((r) => !header.includes(r));
  if (missing.length) {
    throw new DataError(
      'missing-column',
      `missing column(s) ${missing.map((m) => `"${m}"`).join(', ')}; header is: ${header.join(',')}`,
      { file },
    );
  }
  return id;
}

/** Where each CheXmask column sits in one file's header: resolved once per file, by name. */
export interface ChexmaskColumnIndex {
  idColumn: string;
  /** Column indexes; -1 for an absent optional column (Dice RCA (Max)). */
  id: number;
  diceMean: number;
  diceMax: number;
  landmarks: number;
  height: number;
  width: number;
  rle: Record<Region, number>;
}

/**
 * The column indexes of a CheXmask header. The id column is `idColumn` when given, else the first of
 * CHEXMASK_ID_COLUMNS present (chexmaskIdColumn); a repeated name: the id is its last column, the
 * others their first. Throws a DataError naming the file when a required column is missing.
 */
export function chexmaskColumnIndex(
  header: readonly string[],
  file: string,
  idColumn?: string,
): ChexmaskColumnIndex {
  const id = chexmaskIdColumn(header, file, idColumn);
  const at = (c: string) => header.indexOf(c);
  return {
    idColumn: id,
    id: header.lastIndexOf(id),
    diceMean: at(CHEXMASK_COLUMNS.diceMean),
    diceMax: at(CHEXMASK_COLUMNS.diceMax),
    landmarks: at(CHEXMASK_COLUMNS.landmarks),
    height: at(CHEXMASK_COLUMNS.height),
    width: at(CHEXMASK_COLUMNS.width),
    rle: {
      rightLung: at(CHEXMASK_COLUMNS.rightLung),
      leftLung: at(CHEXMASK_COLUMNS.leftLung),
      heart: at(CHEXMASK_COLUMNS.heart),
    },
  };
}

const INTEGER_RE = /^[+-]?\d+(?:\.0*)?$/;
const DECIMAL_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const ASCII_BLANKS = /^[\t\n\v\f\r ]+|[\t\n\v\f\r ]+$/g;

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16];

/**
 * A plain decimal without exponent ("0.8523697853088379", "-.5", "12.") read from bytes with no string
 * made: the digits as an integer below 2^53 divided by a power of ten ≤ 1e16. Both are exact doubles,
 * so the one division rounds exactly as Number() does. undefined for anything else (an exponent,
 * more digits, any other character), which the caller reads the slow way.
 */
function shortDecimal(b: Uint8Array): number | undefined {
  let s = 0;
  let e = b.length;
  while (s < e && (b[s] === 32 || (b[s]! >= 9 && b[s]! <= 13))) s++;
  while (e > s && (b[e - 1] === 32 || (b[e - 1]! >= 9 && b[e - 1]! <= 13))) e--;
  let neg = false;
  if (s < e && (b[s] === 0x2d || b[s] === 0x2b)) neg = b[s++] === 0x2d;
  let m = 0;
  let digits = 0;
  let frac = -1; // digits after the point; -1 before it
  for (let i = s; i < e; i++) {
    const c = b[i]!;
    if (c === 0x2e && frac < 0) frac = 0;
    else if (c >= 0x30 && c <= 0x39) {
      m = m * 10 + (c - 0x30);
      digits++;
      if (frac >= 0) frac++;
    } else return undefined;
  }
  if (digits === 0 || digits > 16 || m > Number.MAX_SAFE_INTEGER) return undefined;
  const v = frac > 0 ? m / POW10[frac]! : m;
  return neg ? -v : v;
}

/**
 * The value of a `Dice RCA (Mean)` cell: the number when the cell, without surrounding ASCII blanks,
 * is a plain decimal ("0.85", "8.5e-1") in [0, 1], else NaN (blank, "nan", "0x1", "Infinity", "85").
 * The one reading of the quality column: the duplicate-id rule, the threshold and the row use it.
 */
export function diceOf(cell: string | number | Uint8Array | null | undefined): number {
  if (cell === null || cell === undefined) return Number.NaN;
  if (typeof cell === 'number') return unitOrNaN(cell);
  if (typeof cell !== 'string') {
    const v = shortDecimal(cell);
    if (v !== undefined) return unitOrNaN(v);
  }
  const raw =
    typeof cell === 'string'
      ? cell
      : Buffer.from(cell.buffer, cell.byteOffset, cell.length).toString('latin1');
  const t = raw.replace(ASCII_BLANKS, '');
  return DECIMAL_RE.test(t) ? unitOrNaN(Number(t)) : Number.NaN;
}

/**
 * A Dice coefficient is in [0, 1]; anything else is NaN (refused as `bad-dice`). A file written in
 * percent ("85") would otherwise pass every threshold, and the low-dice filter would do nothing.
 */
function unitOrNaN(v: number): number {
  return v >= 0 && v <= 1 ? v : Number.NaN;
}

/**
 * The duplicate-id rule, shared by joinChexmask and ChexmaskIndex: an id's row is its **first row whose
 * Dice RCA (Mean) passes the threshold** (diceOf(cell) ≥ minDice). Earlier rows of the id that fail it
 * are refused for their own reason (`low-dice`, `bad-dice`); later rows are duplicates. With no passing
 * row the id is refused for its first row's reason. When the chosen row is malformed the id is refused
 * (no later row is tried): the service decides from the id and Dice cells alone, as the join does.
 */
export function claimsId(dice: number, minDice: number): boolean {
  return dice >= minDice;
}

/** One parsed CheXmask row: the image id, its quality scores, its size and its 120 landmark points. */
export interface ChexmaskRow {
  dicomId: string;
  diceMean: number;
  diceMax: number;
  /** Mask grid (the image it was drawn on must have exactly this size). */
  height: number;
  width: number;
  /**
   * 120 points, flat [x, y, …] in the mask grid: RL 0–43, LL 44–93, H 94–119. In joinChexmask's rows
   * it is a view into a block shared with other rows (mind `byteOffset`; `slice()` before transferring).
   */
  landmarks: Landmarks;
  /** Raw RLE cells, kept only with `keepRle` (they are large at original resolution). */
  rle?: Record<Region, string>;
  /**
   * Where the row's record lies in the CSV, set by a join with `locateRle`: ChexmaskRecords reads its
   * RLE cells from there when they are needed, instead of every row holding them.
   */
  record?: { offset: number; length: number };
  /** Regions whose RLE cell was empty. */
  emptyMasks: Region[];
  /**
   * Set when the row's Height and Width cells were blank (PadChest): height/width are 0 until
   * sizeRowFromImage fills them from the image, after checking that the masks fit it.
   */
  sizeFromImage?: { rleEnd: number };
}

/**
 * A row whose size was blank, given the size of its image: refused (DataError `bad-size`) when an RLE
 * run or a landmark falls outside it. Rows with their own size come back unchanged.
 */
export function sizeRowFromImage(
  row: ChexmaskRow,
  width: number,
  height: number,
  file?: string,
): ChexmaskRow {
  if (!row.sizeFromImage) return row;
  const where = { file, id: row.dicomId, field: 'Height/Width' };
  if (row.sizeFromImage.rleEnd > width * height)
    throw new DataError(
      'bad-size',
      `Height/Width are blank and an RLE run ends at pixel ${row.sizeFromImage.rleEnd}, past the image's ${height}×${width}`,
      where,
    );
  checkLandmarkRange(row.landmarks, height, width, { ...where, field: CHEXMASK_COLUMNS.landmarks });
  const { sizeFromImage: _s, ...rest } = row;
  return { ...rest, height, width };
}

/** The paper's CheXmask quality filter: rows with `Dice RCA (Mean)` below it are refused. */
export const DEFAULT_MIN_DICE = 0.7;

export const JoinOptionsSchema = z
  .object({
    /** The quality threshold in [0, 1], also ChexmaskIndex's (NaN would refuse every row, -1 accept every row). */
    minDice: z.number().min(0).max(1).default(DEFAULT_MIN_DICE),
    /**
     * The contour source the rows are for. 'landmarks': the RLE cells are only looked at for emptiness
     * (validateRle and keepRle default to false). 'rle': the RLE cells are kept (keepRle defaults to
     * true). Unset: as before, RLE cells are validated but not kept.
     */
    source: z.enum(['landmarks', 'rle']).optional(),
    keepRle: z.boolean().optional(),
    /**
     * Kept rows record where they lie in the file (`record`) instead of holding their RLE cells, which
     * are then read back one row at a time (ChexmaskRecords): the `rle` source at scale, where the cells
     * are most of a multi-GB file (≈ 55 KB per row, ≈ 13 GB for MIMIC-CXR-JPG). The cells are still
     * validated. keepRle then defaults to false. A gzipped file is refused: offsets need the plain file.
     */
    locateRle: z.boolean().default(false),
    /** Check the RLE cells (pairs, bounds) of kept rows; a malformed cell refuses the row. */
    validateRle: z.boolean().optional(),
    idColumn: z.string().optional(),
    /**
     * Stop reading once every wanted id has its row (the first passing the Dice threshold, claimsId);
     * later duplicates then go unnoticed.
     */
    stopEarly: z.boolean().default(false),
    /**
     * Bytes per read (the scan buffer grows only for a large kept cell). 1 MB: the chunk being parsed
     * stays in cache and the read ahead is short; 16 MB chunks were 3× slower in wall time on a busy
     * machine and 15 % more CPU.
     */
    chunkBytes: z
      .number()
      .int()
      .min(1)
      .default(1 << 20),
    /** Largest cell the join holds (RLE cells when validated or kept); a larger one refuses its row. */
    maxFieldBytes: z
      .number()
      .int()
      .min(1)
      .default(256 << 20),
    /** Largest total of held cells in one row. */
    maxRecordBytes: z
      .number()
      .int()
      .min(1)
      .default(256 << 20),
  })
  .strict();
/** Options of joinChexmask: the Dice threshold, which cells to keep and check, and progress callbacks. */
export type JoinOptions = z.input<typeof JoinOptionsSchema> & {
  /** Called every 10,000 rows read (and at the end) with the rows read so far and rows kept. */
  onProgress?: (rowsRead: number, kept: number) => void;
  /** Called after every chunk read with the file bytes read so far (compressed bytes for .gz). */
  onBytes?: (bytesRead: number, totalBytes: number) => void;
};

/** What joinChexmask read, matched, kept and dropped (and why), for a run's records. */
export interface JoinSummary {
  file: string;
  idColumn: string;
  minDice: number;
  rowsRead: number;
  /** Rows whose id was wanted. */
  matched: number;
  kept: number;
  /** Wanted ids with no CheXmask row at all. */
  missing: number;
  missingExamples: string[];
  refused: { counts: Record<string, number>; examples: Record<string, string[]> };
  emptyMaskCells: Record<Region, number>;
  diceMeanOfMatched: number | null;
  diceMeanOfKept: number | null;
}

/** One RLE cell as the row builder needs it: is it empty, is it valid, and (when kept) its text. */
interface RleCell {
  blank: boolean;
  validate(height: number, width: number, where: DataErrorWhere): void;
  text(): string;
}

interface RowParseOptions {
  keepRle?: boolean;
  validateRle?: boolean;
  idColumn?: string;
}

function numberCell(
  raw: string | number | null | undefined,
  col: string,
  integer: boolean,
  where: DataErrorWhere,
): number {
  const s = raw === null || raw === undefined ? '' : String(raw).trim();
  const v = Number(s);
  // Number() also accepts "0x18d", "0b101" and "Infinity"; CSV numbers are plain decimals.
  const plain = integer ? INTEGER_RE.test(s) : DECIMAL_RE.test(s);
  if (!plain || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new DataError(
      integer ? 'bad-size' : 'bad-dice',
      `not a${integer ? 'n integer' : ' number'}: "${s}"`,
      {
        ...where,
        field: col,
      },
    );
  }
  return v;
}

/** The checks shared by the object form and the scanned form of a record; throws DataError naming the field. */
function buildRow(
  idCol: string,
  cell: (col: string) => string | number | null | undefined,
  rleCell: (col: string) => RleCell,
  parseLms: (where: DataErrorWhere) => Landmarks,
  opts: RowParseOptions,
  where: DataErrorWhere,
): ChexmaskRow {
  const dicomId = String(cell(idCol) ?? '').trim();
  const w0 = { ...where, id: dicomId || where.id };
  if (!dicomId) throw new DataError('bad-id', 'empty id', { ...w0, field: idCol });
  const num = (col: string, integer: boolean): number => numberCell(cell(col), col, integer, w0);
  // PadChest's rows leave both blank: the size comes from the image (sizeRowFromImage)
  const blankSize = [CHEXMASK_COLUMNS.height, CHEXMASK_COLUMNS.width].every(
    (c) => String(cell(c) ?? '').trim() === '',
  );
  const height = blankSize ? 0 : num(CHEXMASK_COLUMNS.height, true);
  const width = blankSize ? 0 : num(CHEXMASK_COLUMNS.width, true);
  if (!blankSize && (height <= 0 || width <= 0)) {
    throw new DataError('bad-size', `invalid mask size Height=${height} Width=${width}`, {
      ...w0,
      field: 'Height/Width',
    });
  }
  const diceMean = diceOf(cell(CHEXMASK_COLUMNS.diceMean));
  if (Number.isNaN(diceMean)) {
    num(CHEXMASK_COLUMNS.diceMean, false); // throws the bad-dice error of a cell that is not a number
    const raw = String(cell(CHEXMASK_COLUMNS.diceMean) ?? '').trim();
    throw new DataError('bad-dice', `"${raw}" is outside [0, 1]`, {
      ...w0,
      field: CHEXMASK_COLUMNS.diceMean,
    });
  }
  const diceMaxRaw = cell(CHEXMASK_COLUMNS.diceMax);
  const diceMax = diceMaxRaw === undefined || diceMaxRaw === '' ? Number.NaN : Number(diceMaxRaw);
  const landmarks = parseLms({ ...w0, field: CHEXMASK_COLUMNS.landmarks });
  if (!blankSize) checkLandmarkRange(landmarks, height, width, { ...w0, field: CHEXMASK_COLUMNS.landmarks });
  const emptyMasks: Region[] = [];
  const rle = {} as Record<Region, string>;
  let rleEnd = 0;
  for (const r of REGIONS) {
    const col = CHEXMASK_COLUMNS[r];
    const c = rleCell(col);
    if (c.blank) emptyMasks.push(r);
    else if (blankSize) rleEnd = Math.max(rleEnd, rleCellEnd(c.text(), { ...w0, field: col }));
    else if (opts.validateRle !== false) c.validate(height, width, { ...w0, field: col });
    if (opts.keepRle) rle[r] = c.text();
  }
  const row: ChexmaskRow = { dicomId, diceMean, diceMax, height, width, landmarks, emptyMasks };
  if (blankSize) row.sizeFromImage = { rleEnd };
  if (opts.keepRle) row.rle = rle;
  return row;
}

/** Where an RLE cell's last run ends (its runs checked as far as they can be without the image size). */
function rleCellEnd(text: string, where: DataErrorWhere): number {
  const runs = parseRle(text, 1, MAX_MASK_PIXELS, where);
  let end = 0;
  for (let k = 0; k < runs.length; k += 2) end = Math.max(end, runs[k] + runs[k + 1]);
  return end;
}

/**
 * Turns one CheXmask record (column name → cell) into a validated row.
 * @throws {DataError} a bad cell, naming the field (and `where`'s file/row/id): reason `bad-id` (empty
 *   id), `bad-size` (Height/Width not a positive integer), `bad-dice` (a Dice cell not a number), or the
 *   RLE/landmark parsers' reasons (an RLE cell is only checked when `validateRle`/`keepRle` ask for it).
 */
export function parseChexmaskRecord(
  rec: Record<string, string | number | null | undefined>,
  opts: RowParseOptions = {},
  where: DataErrorWhere = {},
): ChexmaskRow {
  const idCol = opts.idColumn ?? CHEXMASK_ID_COLUMNS.find((c) => rec[c] !== undefined) ?? 'dicom_id';
  const rleCell = (col: string): RleCell => {
    const raw = rec[col];
    const text = raw === null || raw === undefined ? '' : String(raw);
    const t = text.trim();
    return {
      blank: t === '' || t.toLowerCase() === 'nan',
      validate: (h, w, at) => {
        parseRle(text, h, w, at);
      },
      text: () => text,
    };
  };
  const lms = (at: DataErrorWhere) =>
    parseLandmarks(rec[CHEXMASK_COLUMNS.landmarks] as string | undefined, at);
  return buildRow(idCol, (c) => rec[c], rleCell, lms, opts, where);
}

/** A scanned record's RLE cell: checked on its bytes; text only made when the cell is kept. */
class ScannedRleCell implements RleCell {
  readonly blank: boolean;
  constructor(
    private readonly v: Buffer | undefined,
    peekedBlank: boolean | undefined,
  ) {
    // PEEK columns carry no bytes: only emptiness is known, nothing to validate or keep.
    this.blank = v ? isBlankCell(v) : (peekedBlank ?? true);
  }
  validate(h: number, w: number, at: DataErrorWhere): void {
    if (this.v && !rleBytesValid(this.v, h, w)) parseRle(this.v.toString('utf8'), h, w, at);
  }
  text(): string {
    return this.v ? this.v.toString('utf8') : '';
  }
}

/**
 * Streams `csvPath` and keeps the rows whose id is in `ids` and whose `Dice RCA (Mean)` ≥ minDice.
 * Height/Width are checked against the JPEG later (buildCache / preprocess), where the image is read.
 * A bad or duplicate row never throws: it is left out and counted in `summary` by reason.
 * @throws {TypeError|RangeError} (rejects) an unknown option or a bad option value, naming it
 *   (parseOptions).
 * @throws {DataError} (rejects) whole-file problems, naming the file: `missing-file`, `bad-csv` (no
 *   header, malformed quoting, a file ending inside a quoted field), `bad-gzip`, or `missing-column`
 *   (no id column or a required CheXmask column).
 */
export async function joinChexmask(
  csvPath: string,
  ids: Iterable<string>,
  options: JoinOptions = {},
): Promise<{ rows: Map<string, ChexmaskRow>; summary: JoinSummary }> {
  // the callbacks are not schema fields; everything else must be
  const { onProgress: _p, onBytes: _b, ...schemaOptions } = options;
  const opts = parseOptions(JoinOptionsSchema, schemaOptions, 'joinChexmask');
  const keepRle = opts.keepRle ?? (opts.source === 'rle' && !opts.locateRle);
  const validateRle = opts.validateRle ?? opts.source !== 'landmarks';
  const wanted = new WantedIds(ids);
  const csv = await CsvScanner.open(
    csvPath,
    { chunkBytes: opts.chunkBytes, maxFieldBytes: opts.maxFieldBytes, maxRecordBytes: opts.maxRecordBytes },
    options.onBytes,
  );
  try {
    if (opts.locateRle && isGzip(csvPath))
      throw new DataError(
        'bad-csv',
        'gzipped CheXmask CSV: the rle contour source reads each row back by byte offset; gunzip it once (or use the landmarks source)',
        { file: csvPath },
      );
    return await joinScanned(csv, wanted, { ...opts, keepRle, validateRle }, options);
  } finally {
    await csv.close();
  }
}

/**
 * The CheXmask row of one image from a CheXmask CSV (streams the file up to the row), as `cxrmask
 * predict`, `explain` and `overlay` read it. It is
 * the row joinChexmask and ChexmaskIndex serve for the id (claimsId: its first row whose Dice passes
 * `minDice`; the default is theirs and `cxrmask serve`'s, 0.7). `keepRle` (default true: one row's
 * masks cost little) keeps the RLE masks, which a predictor drawing RLE contours (a cell trained on
 * them) needs.
 * @throws {TypeError|RangeError} (rejects) `minDice` outside [0, 1] (joinChexmask's option check).
 * @throws {DataError} (rejects) naming the file and id: `unknown-id` (no row), `low-dice` (its rows are
 *   below `minDice`), or the reason its row is malformed (`bad-landmarks`, `bad-row`, …); or
 *   joinChexmask's whole-file reasons.
 */
export async function chexmaskRowFor(
  csvPath: string,
  dicomId: string,
  minDice = DEFAULT_MIN_DICE,
  keepRle = true,
): Promise<ChexmaskRow> {
  const { rows, summary } = await joinChexmask(csvPath, [dicomId], { minDice, keepRle, stopEarly: true });
  const row = rows.get(dicomId);
  if (row) return row;
  const where = { file: csvPath, id: dicomId };
  if (summary.missing) throw new DataError('unknown-id', 'no row with this dicom_id', where);
  // Refused for their Dice alone, else for the defect of the row that passed (as ChexmaskIndex.row).
  const reasons = Object.keys(summary.refused.counts).filter((r) => r !== 'duplicate');
  const reason = reasons.find((r) => r !== 'low-dice') ?? 'low-dice';
  // the example repeats the file and id that `where` puts in front
  const example = (summary.refused.examples[reason]?.[0] ?? '')
    .replace(`${csvPath}, `, '')
    .replace(`, id ${dicomId}`, '');
  throw new DataError(reason, `no usable CheXmask row (${example})`, where);
}

/** A cell's bytes hold a blank ASCII character (the trimming csv values get). */
function isBlankByte(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/**
 * Height/Width on bytes: a positive integer of 1–9 plain digits, blanks around allowed; 0 for anything
 * else (the checked path then accepts it or says why).
 */
function plainSize(v: Uint8Array | undefined): number {
  if (!v) return 0;
  let s = 0;
  let e = v.length;
  while (s < e && isBlankByte(v[s]!)) s++;
  while (e > s && isBlankByte(v[e - 1]!)) e--;
  if (e === s || e - s > 9) return 0;
  let x = 0;
  for (let i = s; i < e; i++) {
    const d = v[i]! - 0x30;
    if (d < 0 || d > 9) return 0;
    x = x * 10 + d;
  }
  return x;
}

/**
 * Landmark arrays for joined rows, carved from shared 480 KB blocks (256 rows each): a typed array of
 * its own costs a malloc plus external-memory bookkeeping, measured as the largest single per-row cost
 * of a join that keeps every row. `next()` is the slot to fill; `commit()` keeps it.
 */
class LandmarkBlocks {
  private block = new ArrayBuffer(0);
  private used = 0;
  private static readonly ROWS = 256;
  next(): Float64Array {
    const bytes = NUM_LANDMARKS * 2 * 8;
    if (this.used + bytes > this.block.byteLength) {
      this.block = new ArrayBuffer(bytes * LandmarkBlocks.ROWS);
      this.used = 0;
    }
    return new Float64Array(this.block, this.used, NUM_LANDMARKS * 2);
  }
  commit(): void {
    this.used += NUM_LANDMARKS * 2 * 8;
  }
}

/**
 * The join's per-row fast path on a scanned record: every cell read once from its bytes, with column
 * indexes resolved once per file and no intermediate strings or error contexts. It returns a row only
 * when every check passes; null sends the record to buildRow, which gives the same row or the precise
 * error. So the fast path can be stricter than buildRow, never looser.
 */
function fastScannedRow(
  rec: ScannedRecord,
  cols: ChexmaskColumnIndex,
  dicomId: string,
  diceMean: number,
  opts: { keepRle: boolean; validateRle: boolean },
  blocks: LandmarkBlocks,
): ChexmaskRow | null {
  const values = rec.values;
  const height = plainSize(values[cols.height]);
  const width = plainSize(values[cols.width]);
  const lmCell = values[cols.landmarks];
  if (!dicomId || height <= 0 || width <= 0 || Number.isNaN(diceMean) || !lmCell) return null;
  const maxCell = cols.diceMax < 0 ? undefined : values[cols.diceMax];
  const diceMax =
    !maxCell || maxCell.length === 0
      ? Number.NaN
      : (shortDecimal(maxCell) ?? Number(maxCell.toString('utf8')));
  const landmarks = blocks.next();
  if (scanLandmarkNumbers(lmCell, landmarks) !== landmarks.length) return null;
  if (!landmarksInRange(landmarks, height, width)) return null;
  const emptyMasks: Region[] = [];
  let rle: Record<Region, string> | undefined;
  if (opts.keepRle) rle = {} as Record<Region, string>;
  for (const r of REGIONS) {
    const i = cols.rle[r];
    const v = values[i];
    if (v ? isBlankCell(v) : (rec.blank[i] ?? true)) emptyMasks.push(r);
    else if (opts.validateRle && v && !rleBytesValid(v, height, width)) return null;
    if (rle) rle[r] = v ? v.toString('utf8') : '';
  }
  const row: ChexmaskRow = { dicomId, diceMean, diceMax, height, width, landmarks, emptyMasks };
  if (rle) row.rle = rle;
  blocks.commit();
  return row;
}

type ScanOptions = z.output<typeof JoinOptionsSchema> & { keepRle: boolean; validateRle: boolean };

/**
 * Which cells of a record are read: the id first (KEY), the small CheXmask cells, and the RLE cells
 * only as far as needed (PEEK: emptiness alone, when they are neither kept nor validated).
 */
function readPlan(header: string[], cols: ChexmaskColumnIndex, opts: ScanOptions): Uint8Array {
  const plan = new Uint8Array(header.length);
  for (const c of Object.values(CHEXMASK_COLUMNS)) if (header.indexOf(c) >= 0) plan[header.indexOf(c)] = KEEP;
  for (const r of REGIONS) plan[cols.rle[r]] = opts.keepRle || opts.validateRle ? KEEP : PEEK;
  plan[cols.id] = KEY;
  return plan;
}

/**
 * The checked path for a record the fast path gave up on (or one below the threshold): buildRow gives
 * the row or the precise DataError, which is counted in `refused`. Rare, so it may look cells up by name.
 */
function checkedScannedRow(
  rec: ScannedRecord,
  header: string[],
  cols: ChexmaskColumnIndex,
  id: string,
  opts: ScanOptions,
  refused: ReasonCounter,
  where: DataErrorWhere,
): ChexmaskRow | null {
  const idColumn = cols.idColumn;
  const text = (c: string): string | undefined => {
    const i = header.indexOf(c);
    const v = i < 0 ? undefined : rec.values[i];
    return v === undefined ? (i < 0 ? undefined : '') : v.toString('utf8');
  };
  try {
    return buildRow(
      idColumn,
      (c) => (c === idColumn ? id : text(c)),
      (c) => new ScannedRleCell(rec.values[header.indexOf(c)], rec.blank[header.indexOf(c)]),
      (at) => parseLandmarksBytes(rec.values[cols.landmarks] ?? Buffer.alloc(0), at),
      { keepRle: opts.keepRle, validateRle: opts.validateRle },
      where,
    );
  } catch (e) {
    if (e instanceof DataError) refused.add(e.reason, e.message);
    else throw e;
    return null;
  }
}

/** Wanted ids that never had a row (state 0), and the first five of them. */
function missingIds(wanted: WantedIds, state: Uint8Array): { missing: number; missingExamples: string[] } {
  const missingExamples: string[] = [];
  let missing = 0;
  for (let j = 0; j < wanted.size; j++) {
    if (state[j] === 0) {
      missing++;
      if (missingExamples.length < 5) missingExamples.push(wanted.list[j]!);
    }
  }
  return { missing, missingExamples };
}

/**
 * The join's row loop, long on purpose: its per-record work stays inline (one pass over ~240 k records
 * of a multi-GB file, measured by bench/join.ts); the setup and the summary are the steps around it.
 */
async function joinScanned(
  csv: CsvScanner,
  wanted: WantedIds,
  opts: ScanOptions,
  options: JoinOptions,
): Promise<{ rows: Map<string, ChexmaskRow>; summary: JoinSummary }> {
  const csvPath = csv.file;
  const header = csv.header;
  const cols = chexmaskColumnIndex(header, csvPath, opts.idColumn);
  const plan = readPlan(header, cols, opts);
  const rows = new Map<string, ChexmaskRow>();
  const blocks = new LandmarkBlocks();
  // Per wanted id (by WantedIds index): 0 no row yet, 1 rows but none passing the threshold, 2 its
  // row came (claimsId; kept or refused): later rows are duplicates.
  const state = new Uint8Array(wanted.size);
  let settled = 0;
  const refused = new ReasonCounter();
  const emptyMaskCells: Record<Region, number> = { rightLung: 0, leftLung: 0, heart: 0 };
  let rowsRead = 0;
  let matched = 0;
  let diceSumMatched = 0;
  let diceNMatched = 0;
  let diceSumKept = 0;
  // The id of the record being read, looked up once from its bytes, as the id cell ends.
  const blankIdx = wanted.findText('');
  let cur = -1;
  const onKey = {
    bytes: (cell: Buffer) => {
      cur = wanted.find(cell);
      return cur >= 0 && state[cur] !== 2;
    },
  };
  for (;;) {
    cur = blankIdx; // a record that ends before its id cell has the blank id
    const rec = csv.nextBuffered(plan, onKey) ?? (await csv.next(plan, onKey));
    if (!rec) break;
    const row = rec.row;
    rowsRead++;
    if (rowsRead % 10000 === 0) options.onProgress?.(rowsRead, rows.size);
    if (opts.stopEarly && settled === wanted.size) break;
    if (cur < 0) continue;
    const k = cur;
    const id = wanted.list[k]!;
    matched++;
    // onKey already looked at the state, unless the record ended before its id cell
    if (rec.rejected || (!rec.keyed && state[k] === 2)) {
      refused.add(
        'duplicate',
        `${csvPath}, row ${row}, id ${id}: duplicate row (an earlier row of this id passed the Dice threshold)`,
      );
      continue;
    }
    const dice = diceOf(rec.values[cols.diceMean]);
    const claims = claimsId(dice, opts.minDice);
    if (claims) {
      state[k] = 2;
      settled++;
    } else state[k] = 1;
    let r: ChexmaskRow | null = null;
    const fieldsOk = rec.fields === header.length;
    if (fieldsOk && !Number.isNaN(dice)) {
      diceSumMatched += dice;
      diceNMatched++;
    }
    if (!fieldsOk) {
      refused.add(
        'bad-row',
        `${csvPath}, row ${row}, id ${id}: ${rec.fields} cells, header has ${header.length}`,
      );
    } else if (!claims && !Number.isNaN(dice)) {
      refused.add('low-dice', `${csvPath}, row ${row}, id ${id}: Dice RCA (Mean) ${dice} < ${opts.minDice}`);
    } else if (rec.oversize) {
      refused.add(rec.oversize.reason, rec.oversize.message);
    } else {
      r = claims ? fastScannedRow(rec, cols, id, dice, opts, blocks) : null;
      r ??= checkedScannedRow(rec, header, cols, id, opts, refused, { file: csvPath, row, id });
    }
    if (r) {
      if (opts.locateRle) r.record = { offset: rec.start, length: rec.end - rec.start };
      for (const e of r.emptyMasks) emptyMaskCells[e]++;
      rows.set(id, r);
      diceSumKept += r.diceMean;
    }
  }
  options.onProgress?.(rowsRead, rows.size);
  return {
    rows,
    summary: {
      file: csvPath,
      idColumn: cols.idColumn,
      minDice: opts.minDice,
      rowsRead,
      matched,
      kept: rows.size,
      ...missingIds(wanted, state),
      refused: refused.toJSON(),
      emptyMaskCells,
      diceMeanOfMatched: diceNMatched ? diceSumMatched / diceNMatched : null,
      diceMeanOfKept: rows.size ? diceSumKept / rows.size : null,
    },
  };
}
