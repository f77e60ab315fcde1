/**
 * CheXmask join: stream a per-dataset CheXmask CSV (several GB for MIMIC-CXR-JPG) and keep only the
 * rows whose id is wanted, parsed and validated. Rows are refused, counted and reported per reason;
 * nothing here ever throws for a single bad row. The file is read by the chunked scanner (csvscan.ts):
 * the id cell is looked at first, unwanted rows are skipped at memchr speed, and cells the contour
 * source does not need are never decoded.
 */
import { z } from 'zod';
import { CsvScanner, isBlankCell, KEEP, KEY, PEEK, type ScannedRecord } from './csvscan.js';
import { DataError, type DataErrorWhere, ReasonCounter } from './errors.js';
import {
  checkLandmarkRange,
  type Landmarks,
  parseLandmarks,
  parseLandmarksBytes,
  REGIONS,
  type Region,
} from './landmarks.js';
import { parseOptions } from './options.js';
import { MAX_MASK_PIXELS, parseRle, rleBytesValid } from './rle.js';

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

export interface ChexmaskRow {
  dicomId: string;
  diceMean: number;
  diceMax: number;
  /** Mask grid (the image it was drawn on must have exactly this size). */
  height: number;
  width: number;
  /** 120 points, flat [x, y, …] in the mask grid: RL 0–43, LL 44–93, H 94–119. */
  landmarks: Landmarks;
  /** Raw RLE cells, kept only with `keepRle` (they are large at original resolution). */
  rle?: Record<Region, string>;
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

export const JoinOptionsSchema = z
  .object({
    minDice: z.number().min(0).max(1).default(0.7),
    /**
     * The contour source the rows are for. 'landmarks': the RLE cells are only looked at for emptiness
     * (validateRle and keepRle default to false). 'rle': the RLE cells are kept (keepRle defaults to
     * true). Unset: as before, RLE cells are validated but not kept.
     */
    source: z.enum(['landmarks', 'rle']).optional(),
    keepRle: z.boolean().optional(),
    /** Check the RLE cells (pairs, bounds) of kept rows; a malformed cell refuses the row. */
    validateRle: z.boolean().optional(),
    idColumn: z.string().optional(),
    /** Stop reading once every wanted id has been seen (later duplicates then go unnoticed). */
    stopEarly: z.boolean().default(false),
    /** Bytes per read (the scan buffer grows only for a large kept cell). */
    chunkBytes: z
      .number()
      .int()
      .min(1)
      .default(16 << 20),
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
export type JoinOptions = z.input<typeof JoinOptionsSchema> & {
  /** Called every 10,000 rows read (and at the end) with the rows read so far and rows kept. */
  onProgress?: (rowsRead: number, kept: number) => void;
  /** Called after every chunk read with the file bytes read so far (compressed bytes for .gz). */
  onBytes?: (bytesRead: number, totalBytes: number) => void;
};

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

const INTEGER_RE = /^[+-]?\d+(?:\.0*)?$/;
const DECIMAL_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

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
  const diceMean = num(CHEXMASK_COLUMNS.diceMean, false);
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
  const keepRle = opts.keepRle ?? opts.source === 'rle';
  const validateRle = opts.validateRle ?? opts.source !== 'landmarks';
  const wanted = ids instanceof Set ? (ids as Set<string>) : new Set(ids);
  const csv = await CsvScanner.open(
    csvPath,
    { chunkBytes: opts.chunkBytes, maxFieldBytes: opts.maxFieldBytes, maxRecordBytes: opts.maxRecordBytes },
    options.onBytes,
  );
  try {
    return await joinScanned(csv, wanted, { ...opts, keepRle, validateRle }, options);
  } finally {
    await csv.close();
  }
}

async function joinScanned(
  csv: CsvScanner,
  wanted: Set<string>,
  opts: z.output<typeof JoinOptionsSchema> & { keepRle: boolean; validateRle: boolean },
  options: JoinOptions,
): Promise<{ rows: Map<string, ChexmaskRow>; summary: JoinSummary }> {
  const csvPath = csv.file;
  const header = csv.header;
  const idColumn = chexmaskIdColumn(header, csvPath, opts.idColumn);
  // Which cells are read: the id first, the small cells, and the RLE cells only as far as needed.
  // (A repeated header name: the id is its last column, the others their first, as before.)
  const idIdx = header.lastIndexOf(idColumn);
  const colIdx = (c: string) => header.indexOf(c);
  const plan = new Uint8Array(header.length);
  for (const c of Object.values(CHEXMASK_COLUMNS)) if (colIdx(c) >= 0) plan[colIdx(c)] = KEEP;
  for (const r of REGIONS) {
    plan[colIdx(CHEXMASK_COLUMNS[r])] = opts.keepRle || opts.validateRle ? KEEP : PEEK;
  }
  plan[idIdx] = KEY;
  const lmIdx = colIdx(CHEXMASK_COLUMNS.landmarks);

  const rows = new Map<string, ChexmaskRow>();
  const refused = new ReasonCounter();
  const emptyMaskCells: Record<Region, number> = { rightLung: 0, leftLung: 0, heart: 0 };
  const matchedIds = new Set<string>();
  let rowsRead = 0;
  let matched = 0;
  let diceSumMatched = 0;
  let diceNMatched = 0;
  let diceSumKept = 0;
  const onKey = (key: string) => {
    const id = key.trim();
    return wanted.has(id) && !rows.has(id);
  };
  const text = (rec: ScannedRecord, c: string): string | undefined => {
    const i = colIdx(c);
    const v = i < 0 ? undefined : rec.values[i];
    return v === undefined ? (i < 0 ? undefined : '') : v.toString('utf8');
  };
  for (;;) {
    const rec = await csv.next(plan, onKey);
    if (!rec) break;
    const row = rec.row;
    rowsRead++;
    if (rowsRead % 10000 === 0) options.onProgress?.(rowsRead, rows.size);
    if (opts.stopEarly && matchedIds.size === wanted.size) break;
    const id = (rec.key ?? '').trim();
    if (!wanted.has(id)) continue;
    matched++;
    matchedIds.add(id);
    const where = { file: csvPath, row, id };
    if (rows.has(id)) {
      refused.add('duplicate', `${csvPath}, row ${row}, id ${id}: duplicate row (first kept)`);
      continue;
    }
    if (rec.fields !== header.length) {
      refused.add(
        'bad-row',
        `${csvPath}, row ${row}, id ${id}: ${rec.fields} cells, header has ${header.length}`,
      );
      continue;
    }
    const dice = Number(text(rec, CHEXMASK_COLUMNS.diceMean));
    if (Number.isFinite(dice)) {
      diceSumMatched += dice;
      diceNMatched++;
    }
    if (Number.isFinite(dice) && dice < opts.minDice) {
      refused.add('low-dice', `${csvPath}, row ${row}, id ${id}: Dice RCA (Mean) ${dice} < ${opts.minDice}`);
      continue;
    }
    if (rec.oversize) {
      refused.add(rec.oversize.reason, rec.oversize.message);
      continue;
    }
    try {
      const r = buildRow(
        idColumn,
        (c) => (c === idColumn ? id : text(rec, c)),
        (c) => new ScannedRleCell(rec.values[colIdx(c)], rec.blank[colIdx(c)]),
        (at) => parseLandmarksBytes(rec.values[lmIdx] ?? Buffer.alloc(0), at),
        { keepRle: opts.keepRle, validateRle: opts.validateRle },
        where,
      );
      for (const e of r.emptyMasks) emptyMaskCells[e]++;
      rows.set(id, r);
      diceSumKept += r.diceMean;
    } catch (e) {
      if (e instanceof DataError) refused.add(e.reason, e.message);
      else throw e;
    }
  }
  options.onProgress?.(rowsRead, rows.size);
  const missingExamples: string[] = [];
  let missing = 0;
  for (const id of wanted) {
    if (!matchedIds.has(id)) {
      missing++;
      if (missingExamples.length < 5) missingExamples.push(id);
    }
  }
  return {
    rows,
    summary: {
      file: csvPath,
      idColumn,
      minDice: opts.minDice,
      rowsRead,
      matched,
      kept: rows.size,
      missing,
      missingExamples,
      refused: refused.toJSON(),
      emptyMaskCells,
      diceMeanOfMatched: diceNMatched ? diceSumMatched / diceNMatched : null,
      diceMeanOfKept: rows.size ? diceSumKept / rows.size : null,
    },
  };
}
