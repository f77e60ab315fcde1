/**
 * CheXmask run-length encoding: space-separated `start length` pairs, starts 1-based into the
 * row-major (C-order) flattening of an H×W mask (index = y*W + x + 1). An empty cell is an empty mask.
 */
import { DataError, type DataErrorWhere } from './errors.js';

/** Parses an RLE string into a flat Uint32Array of (start0, length) pairs (starts made 0-based), validated. */
export function parseRle(
  rle: string | null | undefined,
  height: number,
  width: number,
  where: DataErrorWhere = {},
): Uint32Array {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new DataError('bad-size', `invalid mask size ${height}×${width}`, where);
  }
  if (rle === null || rle === undefined) return new Uint32Array(0);
  const s = rle.trim();
  if (s === '' || s.toLowerCase() === 'nan') return new Uint32Array(0);
  const total = height * width;
  // Hand-rolled integer scanner: real cells hold thousands of numbers.
  const out: number[] = [];
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
      const tok = s.slice(start, tokEnd < 0 ? Math.min(n, start + 20) : tokEnd);
      throw new DataError(
        'bad-rle',
        `malformed RLE: "${tok}" at character ${start} is not a non-negative integer`,
        where,
      );
    }
    out.push(v);
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
    const st = out[k];
    const len = out[k + 1];
    if (st < 1)
      throw new DataError(
        'bad-rle',
        `malformed RLE: pair ${k / 2} has start ${st}; starts are 1-based`,
        where,
      );
    if (st - 1 + len > total) {
      throw new DataError(
        'bad-rle',
        `malformed RLE: pair ${k / 2} (start ${st}, length ${len}) runs beyond the ${height}×${width} mask (${total} pixels)`,
        where,
      );
    }
    runs[k] = st - 1;
    runs[k + 1] = len;
  }
  return runs;
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
