/**
 * CheXmask run-length encoding: space-separated `start length` pairs, starts 1-based into the
 * row-major (C-order) flattening of an H×W mask (index = y*W + x + 1). An empty cell is an empty mask.
 */
import { DataError, type DataErrorWhere } from '../common/errors.js';

/** Masks larger than this (e.g. 16384×16384) are refused before anything is allocated for them. */
export const MAX_MASK_PIXELS = 1 << 28;

function checkSize(height: number, width: number, where: DataErrorWhere): number {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new DataError('bad-size', `invalid mask size ${height}×${width}`, where);
  }
  const total = height * width;
  if (total > MAX_MASK_PIXELS) {
    throw new DataError(
      'bad-size',
      `mask size ${height}×${width} is over the ${MAX_MASK_PIXELS}-pixel limit`,
      where,
    );
  }
  return total;
}

/**
 * Parses an RLE string into a flat Uint32Array of (start0, length) pairs (starts made 0-based), validated.
 * Each pair is checked as it is read, and the runs together may not cover more than H×W pixels, so
 * a hostile cell is refused before it costs more than its own length.
 */
export function parseRle(
  rle: string | null | undefined,
  height: number,
  width: number,
  where: DataErrorWhere = {},
): Uint32Array {
  const total = checkSize(height, width, where);
  if (rle === null || rle === undefined) return new Uint32Array(0);
  const s = rle.trim();
  if (s === '' || s.toLowerCase() === 'nan') return new Uint32Array(0);
  // Hand-rolled integer scanner: real cells hold thousands of numbers.
  const out: number[] = [];
  let covered = 0;
  let i = 0;
  const n = s.length;
  while (i < n) {
    let c = s.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) {
      i++;
      continue;
    }
    let v = 0;
    const start = i;
    while (i < n) {
      c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      i++;
    }
    if (i === start || (i < n && !(c === 32 || c === 9 || c === 10 || c === 13))) {
      const tokEnd = s.indexOf(' ', start);
      const tok = s.slice(start, tokEnd < 0 ? Math.min(n, start + 20) : Math.min(tokEnd, start + 40));
      throw new DataError(
        'bad-rle',
        `malformed RLE: "${tok}" at character ${start} is not a non-negative integer`,
        where,
      );
    }
    out.push(v);
    if (out.length % 2 === 0) {
      const k = out.length - 2;
      checkPair(out[k], v, k / 2, total, height, width, where);
      covered += v;
      if (covered > total) {
        throw new DataError(
          'bad-rle',
          `malformed RLE: the runs up to pair ${k / 2} cover ${covered} pixels, more than the ${height}×${width} mask`,
          where,
        );
      }
    }
  }
  if (out.length % 2 !== 0) {
    throw new DataError(
      'bad-rle',
      `malformed RLE: odd number of values (${out.length}); expected start/length pairs`,
      where,
    );
  }
  const runs = new Uint32Array(out.length);
  for (let k = 0; k < out.length; k += 2) {
    runs[k] = out[k] - 1;
    runs[k + 1] = out[k + 1];
  }
  return runs;
}

function checkPair(
  st: number,
  len: number,
  k: number,
  total: number,
  height: number,
  width: number,
  where: DataErrorWhere,
): void {
  if (st < 1) {
    throw new DataError('bad-rle', `malformed RLE: pair ${k} has start ${st}; starts are 1-based`, where);
  }
  if (st - 1 + len > total) {
    throw new DataError(
      'bad-rle',
      `malformed RLE: pair ${k} (start ${st}, length ${len}) runs beyond the ${height}×${width} mask (${total} pixels)`,
      where,
    );
  }
}

/**
 * The join's fast check of an RLE cell held as bytes (no string is made): true when `parseRle` would
 * accept it. False means "not proven valid"; the caller then runs `parseRle` on the text, which
 * throws the precise error. The cell must not be blank/"nan" (callers test that first).
 */
export function rleBytesValid(b: Uint8Array, height: number, width: number): boolean {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) return false;
  const total = height * width;
  if (total > MAX_MASK_PIXELS) return false;
  let i = 0;
  let e = b.length;
  while (i < e && (b[i] === 32 || (b[i] >= 9 && b[i] <= 13))) i++;
  while (e > i && (b[e - 1] === 32 || (b[e - 1] >= 9 && b[e - 1] <= 13))) e--;
  let count = 0;
  let st = 0;
  let covered = 0;
  while (i < e) {
    let c = b[i];
    if (c === 32 || c === 9 || c === 10 || c === 13) {
      i++;
      continue;
    }
    let v = 0;
    const start = i;
    while (i < e) {
      c = b[i];
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      i++;
    }
    if (i === start || (i < e && !(c === 32 || c === 9 || c === 10 || c === 13))) return false;
    if (count++ % 2 === 0) st = v;
    else {
      covered += v;
      if (st < 1 || st - 1 + v > total || covered > total) return false;
    }
  }
  return count % 2 === 0;
}

/** Decodes an RLE string into a Uint8Array(H*W) of 0/1 (row-major). */
export function decodeRle(
  rle: string | null | undefined,
  height: number,
  width: number,
  where: DataErrorWhere = {},
): Uint8Array {
  return runsToMask(parseRle(rle, height, width, where), height, width);
}

export function runsToMask(runs: Uint32Array, height: number, width: number): Uint8Array {
  checkSize(height, width, {});
  const m = new Uint8Array(height * width);
  for (let k = 0; k < runs.length; k += 2) m.fill(1, runs[k], runs[k] + runs[k + 1]);
  return m;
}

/** Encodes a row-major 0/non-zero mask the way CheXmask does (1-based starts). Empty mask → ''. */
export function encodeRle(mask: ArrayLike<number>, height: number, width: number): string {
  const total = height * width;
  if (mask.length !== total)
    throw new RangeError(`encodeRle: mask has ${mask.length} values, expected ${total}`);
  const parts: string[] = [];
  let i = 0;
  while (i < total) {
    if (mask[i]) {
      const start = i;
      while (i < total && mask[i]) i++;
      parts.push(`${start + 1} ${i - start}`);
    } else i++;
  }
  return parts.join(' ');
}
