/**
 * CheXmask landmarks: 120 (x, y) points in the mask's pixel grid, Right Lung 44, Left Lung 50,
 * Heart 26, in that order. Two serialisations exist: a flat comma list ("403,115,367,119,...") in the
 * Preprocessed files and a numpy repr ("[[403 115]\n [367 119] ...]") in OriginalResolution; both
 * are parsed by taking every (possibly negative, possibly decimal) number in order.
 */
import { DataError, type DataErrorWhere } from './errors.js';

export const REGIONS = ['rightLung', 'leftLung', 'heart'] as const;
export type Region = (typeof REGIONS)[number];
export const REGION_POINTS: Record<Region, [number, number]> = {
  rightLung: [0, 44],
  leftLung: [44, 94],
  heart: [94, 120],
};
export const NUM_LANDMARKS = 120;

/** Flat Float64Array [x0, y0, x1, y1, …] of 120 points. */
export type Landmarks = Float64Array;

const NUM_RE = /-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/g;

export function parseLandmarks(text: string | null | undefined, where: DataErrorWhere = {}): Landmarks {
  if (text === null || text === undefined || text.trim() === '' || text.trim().toLowerCase() === 'nan') {
    throw new DataError('bad-landmarks', 'landmarks are empty', where);
  }
  const nums = text.match(NUM_RE);
  const count = nums ? nums.length : 0;
  if (count !== NUM_LANDMARKS * 2) {
    throw new DataError(
      'bad-landmarks',
      `expected ${NUM_LANDMARKS} points (${NUM_LANDMARKS * 2} numbers), found ${count} numbers`,
      where,
    );
  }
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = Number((nums as RegExpMatchArray)[i]);
  return out;
}

/** The polygon of one region as a flat [x, y, …] view. */
export function regionPolygon(lm: Landmarks, region: Region): Float64Array {
  const [a, b] = REGION_POINTS[region];
  return lm.subarray(a * 2, b * 2);
}

/** Flat comma form, as in the Preprocessed CSVs. */
export function formatLandmarksFlat(lm: ArrayLike<number>): string {
  return Array.from(lm, (v) => String(Math.round(v))).join(',');
}

/** numpy repr form, as in the OriginalResolution CSVs. */
export function formatLandmarksNumpy(lm: ArrayLike<number>): string {
  const rows: string[] = [];
  for (let i = 0; i < lm.length; i += 2) rows.push(`[${Math.round(lm[i])} ${Math.round(lm[i + 1])}]`);
  return `[${rows.join('\n ')}]`;
}
