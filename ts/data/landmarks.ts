/**
 * CheXmask landmarks: 120 (x, y) points in the mask's pixel grid, Right Lung 44, Left Lung 50,
 * Heart 26, in that order. Two serialisations exist: a flat comma list ("403,115,367,119,...") in the
 * Preprocessed files and a numpy repr ("[[403 115]\n [367 119] ...]") in OriginalResolution; both
 * are parsed by taking every (possibly negative, possibly decimal) number in order.
 */
import { DataError, type DataErrorWhere } from '../common/errors.js';

export const REGIONS = ['rightLung', 'leftLung', 'heart'] as const;
/** A region drawn from CheXmask landmarks: the right lung, the left lung or the heart. */
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

/** Whether checkLandmarkRange would accept `lm` (no error object is made). */
export function landmarksInRange(lm: Landmarks, height: number, width: number): boolean {
  const limit = 4 * Math.max(height, width, 64);
  for (let i = 0; i < lm.length; i++) {
    const v = lm[i]!;
    // NaN fails both comparisons; ±Infinity fails one
    if (!(v >= -limit && v <= limit)) return false;
  }
  return true;
}

/**
 * Refuses landmarks that cannot belong to a mask of height×width: non-finite values (1e999 parses as
 * Infinity) or points far outside the grid (x = 1e12), which would draw an empty or distorted contour
 * and leave the "masked" image silently unmasked. The bound is generous (4× the larger side, at least
 * 256 px) so that segmentations that run a little past the image edge still pass.
 */
export function checkLandmarkRange(
  lm: Landmarks,
  height: number,
  width: number,
  where: DataErrorWhere = {},
): void {
  const limit = 4 * Math.max(height, width, 64);
  for (let i = 0; i < lm.length; i++) {
    const v = lm[i]!;
    if (!Number.isFinite(v) || v < -limit || v > limit) {
      const point = i >> 1;
      throw new DataError(
        'bad-landmarks',
        `point ${point} ${i % 2 ? 'y' : 'x'} = ${v} is outside the ${width}×${height} mask grid (allowed ±${limit})`,
        where,
      );
    }
  }
}

/**
 * The numbers of a landmark cell held as bytes, the same tokens as NUM_RE, written into `out` (up to
 * its length); returns how many there are (also past `out`'s length). No string is made except for a
 * token with a fraction, an exponent or more than 15 digits. This is the join's per-row hot loop.
 */
export function scanLandmarkNumbers(b: Uint8Array, out: Float64Array): number {
  const cap = out.length;
  const n = b.length;
  let count = 0;
  let i = 0;
  while (i < n) {
    let d = b[i]! - 0x30;
    const start = i;
    let neg = false;
    if (d < 0 || d > 9) {
      // not a digit: a '-' starts a token only when a digit follows
      if (d !== -3 || i + 1 >= n) {
        i++;
        continue;
      }
      d = b[i + 1]! - 0x30;
      if (d < 0 || d > 9) {
        i++;
        continue;
      }
      neg = true;
      i++;
    }
    const d0 = i;
    let v = d;
    i++;
    let c = 0;
    while (i < n) {
      c = b[i]!;
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      i++;
    }
    if (i >= n) c = 0;
    let simple = i - d0 <= 15;
    // Optional fraction and exponent, each only when followed by digits (as in NUM_RE).
    if (c === 0x2e || (c | 0x20) === 0x65) {
      if (c === 0x2e && i + 1 < n && b[i + 1]! >= 0x30 && b[i + 1]! <= 0x39) {
        i += 2;
        while (i < n && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
        c = i < n ? b[i]! : 0;
        simple = false;
      }
      if ((c | 0x20) === 0x65 && i < n) {
        let j = i + 1;
        if (j < n && (b[j] === 0x2b || b[j] === 0x2d)) j++;
        if (j < n && b[j]! >= 0x30 && b[j]! <= 0x39) {
          while (j < n && b[j]! >= 0x30 && b[j]! <= 0x39) j++;
          i = j;
          simple = false;
        }
      }
    }
    if (count < cap) {
      out[count] = simple
        ? neg
          ? -v
          : v
        : Number(Buffer.from(b.buffer, b.byteOffset + start, i - start).toString('latin1'));
    }
    count++;
  }
  return count;
}

/**
 * parseLandmarks on bytes (the join's cells): the same tokens as NUM_RE, read without making a
 * string, so a 243k-row join does not run a regex over every cell. Same errors as parseLandmarks.
 */
export function parseLandmarksBytes(b: Uint8Array, where: DataErrorWhere = {}): Landmarks {
  const out = new Float64Array(NUM_LANDMARKS * 2);
  const count = scanLandmarkNumbers(b, out);
  if (count !== out.length) {
    if (count === 0 && (isNanCell(b) || b.every((x) => x === 32 || (x >= 9 && x <= 13)))) {
      throw new DataError('bad-landmarks', 'landmarks are empty', where);
    }
    throw new DataError(
      'bad-landmarks',
      `expected ${NUM_LANDMARKS} points (${NUM_LANDMARKS * 2} numbers), found ${count} numbers`,
      where,
    );
  }
  return out;
}

/** A cell that is "nan" (any case) between blanks. */
function isNanCell(b: Uint8Array): boolean {
  let s = 0;
  let e = b.length;
  while (s < e && (b[s] === 32 || (b[s] >= 9 && b[s] <= 13))) s++;
  while (e > s && (b[e - 1] === 32 || (b[e - 1] >= 9 && b[e - 1] <= 13))) e--;
  return e - s === 3 && (b[s] | 0x20) === 0x6e && (b[s + 1] | 0x20) === 0x61 && (b[s + 2] | 0x20) === 0x6e;
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
