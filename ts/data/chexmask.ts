/**
 * CheXmask join: stream a per-dataset CheXmask CSV (several GB for MIMIC-CXR-JPG) and keep only the
 * rows whose id is wanted, parsed and validated. Rows are refused, counted and reported per reason;
 * nothing here ever throws for a single bad row.
 */
import { z } from 'zod';
import { openCsv } from './csv.js';
import { DataError, type DataErrorWhere, ReasonCounter } from './errors.js';
import { type Landmarks, parseLandmarks, REGIONS, type Region } from './landmarks.js';
import { parseRle } from './rle.js';

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
export const CHEXMASK_ID_COLUMNS = ['dicom_id', 'image_id', 'Image Index', 'Path'] as const;

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
}

export const JoinOptionsSchema = z.object({
  minDice: z.number().min(0).max(1).default(0.7),
  keepRle: z.boolean().default(false),
  /** Check the RLE cells (pairs, bounds) of kept rows; a malformed cell refuses the row. */
  validateRle: z.boolean().default(true),
  idColumn: z.string().optional(),
  /** Stop reading once every wanted id has been seen (later duplicates then go unnoticed). */
  stopEarly: z.boolean().default(false),
});
export type JoinOptions = z.input<typeof JoinOptionsSchema> & {
  /** Called every 10,000 rows read (and at the end) with the rows read so far and rows kept. */
  onProgress?: (rowsRead: number, kept: number) => void;
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

/** Turns one CheXmask record (column name → cell) into a validated row; throws DataError naming the field. */
export function parseChexmaskRecord(
  rec: Record<string, string | number | null | undefined>,
  opts: { keepRle?: boolean; validateRle?: boolean; idColumn?: string } = {},
  where: DataErrorWhere = {},
): ChexmaskRow {
  const idCol = opts.idColumn ?? CHEXMASK_ID_COLUMNS.find((c) => rec[c] !== undefined) ?? 'dicom_id';
  const dicomId = String(rec[idCol] ?? '').trim();
  const w0 = { ...where, id: dicomId || where.id };
  if (!dicomId) throw new DataError('bad-id', 'empty id', { ...w0, field: idCol });
  const num = (col: string, integer: boolean): number => {
    const raw = rec[col];
    const s = raw === null || raw === undefined ? '' : String(raw).trim();
    const v = Number(s);
    if (s === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
      throw new DataError(
        integer ? 'bad-size' : 'bad-dice',
        `not a${integer ? 'n integer' : ' number'}: "${s}"`,
        {
          ...w0,
          field: col,
        },
      );
    }
    return v;
  };
  const height = num(CHEXMASK_COLUMNS.height, true);
  const width = num(CHEXMASK_COLUMNS.width, true);
  if (height <= 0 || width <= 0) {
    throw new DataError('bad-size', `invalid mask size Height=${height} Width=${width}`, {
      ...w0,
      field: 'Height/Width',
    });
  }
  const diceMean = num(CHEXMASK_COLUMNS.diceMean, false);
  const diceMaxRaw = rec[CHEXMASK_COLUMNS.diceMax];
  const diceMax = diceMaxRaw === undefined || diceMaxRaw === '' ? Number.NaN : Number(diceMaxRaw);
  const landmarks = parseLandmarks(rec[CHEXMASK_COLUMNS.landmarks] as string | undefined, {
    ...w0,
    field: CHEXMASK_COLUMNS.landmarks,
  });
  const emptyMasks: Region[] = [];
  const rle = {} as Record<Region, string>;
  for (const r of REGIONS) {
    const col = CHEXMASK_COLUMNS[r];
    const raw = rec[col];
    const cell = raw === null || raw === undefined ? '' : String(raw);
    const t = cell.trim();
    if (t === '' || t.toLowerCase() === 'nan') emptyMasks.push(r);
    else if (opts.validateRle !== false) parseRle(cell, height, width, { ...w0, field: col });
    rle[r] = cell;
  }
  const row: ChexmaskRow = { dicomId, diceMean, diceMax, height, width, landmarks, emptyMasks };
  if (opts.keepRle) row.rle = rle;
  return row;
}

/**
 * Streams `csvPath` and keeps the rows whose id is in `ids` and whose `Dice RCA (Mean)` ≥ minDice.
 * Height/Width are checked against the JPEG later (buildCache / preprocess), where the image is read.
 */
export async function joinChexmask(
  csvPath: string,
  ids: Iterable<string>,
  options: JoinOptions = {},
): Promise<{ rows: Map<string, ChexmaskRow>; summary: JoinSummary }> {
  const opts = JoinOptionsSchema.parse(options);
  const wanted = ids instanceof Set ? (ids as Set<string>) : new Set(ids);
  const probe = await openCsv(csvPath);
  const idColumn = opts.idColumn ?? CHEXMASK_ID_COLUMNS.find((c) => probe.header.includes(c)) ?? 'dicom_id';
  for await (const _ of probe.records) break; // closes the probe stream
  // Re-open with the full column requirement so the error lists everything missing at once.
  const required = [
    idColumn,
    ...Object.values(CHEXMASK_COLUMNS).filter((c) => c !== CHEXMASK_COLUMNS.diceMax),
  ];
  const csv = await openCsv(csvPath, required);
  const idIdx = csv.col(idColumn);
  const colIdx: Record<string, number> = {};
  for (const c of csv.header) colIdx[c] = csv.header.indexOf(c);

  const rows = new Map<string, ChexmaskRow>();
  const refused = new ReasonCounter();
  const emptyMaskCells: Record<Region, number> = { rightLung: 0, leftLung: 0, heart: 0 };
  const matchedIds = new Set<string>();
  let rowsRead = 0;
  let matched = 0;
  let diceSumMatched = 0;
  let diceNMatched = 0;
  let diceSumKept = 0;
  for await (const { row, values } of csv.records) {
    rowsRead++;
    if (rowsRead % 10000 === 0) options.onProgress?.(rowsRead, rows.size);
    if (opts.stopEarly && matchedIds.size === wanted.size) break;
    const id = (values[idIdx] ?? '').trim();
    if (!wanted.has(id)) continue;
    matched++;
    matchedIds.add(id);
    const where = { file: csvPath, row, id };
    if (rows.has(id)) {
      refused.add('duplicate', `${csvPath}, row ${row}, id ${id}: duplicate row (first kept)`);
      continue;
    }
    if (values.length !== csv.header.length) {
      refused.add(
        'bad-row',
        `${csvPath}, row ${row}, id ${id}: ${values.length} cells, header has ${csv.header.length}`,
      );
      continue;
    }
    const rec: Record<string, string> = {};
    for (const c of csv.header) rec[c] = values[colIdx[c]];
    const dice = Number(rec[CHEXMASK_COLUMNS.diceMean]);
    if (Number.isFinite(dice)) {
      diceSumMatched += dice;
      diceNMatched++;
    }
    if (Number.isFinite(dice) && dice < opts.minDice) {
      refused.add('low-dice', `${csvPath}, row ${row}, id ${id}: Dice RCA (Mean) ${dice} < ${opts.minDice}`);
      continue;
    }
    try {
      const r = parseChexmaskRecord(
        rec,
        { keepRle: opts.keepRle, validateRle: opts.validateRle, idColumn },
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
