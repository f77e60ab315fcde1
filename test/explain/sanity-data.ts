/**
 * A tiny localisation task for the attribution sanity checks: smooth noise images, and in positives a
 * bright square at a random place. What decides the label is known pixel by pixel.
 */

import { mulberry32 } from '../../ts/common/random.js';
export interface SquareSet {
  x: Float32Array; // [n,3,S,S] normalised
  y: Float32Array; // [n,5]: column 0 = square present; the other columns are masked out
  mask: Float32Array; // [n,5]: 1 for column 0 only
  regions: Uint8Array[]; // per image: 1 inside the square (all zero for negatives)
}

export function squares(n: number, size: number, seed: number, side = 56, amp = 2): SquareSet {
  const rng = mulberry32(seed);
  const px = size * size;
  const x = new Float32Array(n * 3 * px);
  const y = new Float32Array(n * 5);
  const mask = new Float32Array(n * 5);
  const regions: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const pos = i % 2 === 0;
    const fx = 0.02 + 0.04 * rng();
    const fy = 0.02 + 0.04 * rng();
    const ph = 6.28 * rng();
    const r = new Uint8Array(px);
    const x0 = Math.floor(rng() * (size - side));
    const y0 = Math.floor(rng() * (size - side));
    if (pos) for (let a = y0; a < y0 + side; a++) r.fill(1, a * size + x0, a * size + x0 + side);
    for (let p = 0; p < px; p++) {
      const v =
        0.5 * Math.sin(fx * (p % size) + ph) * Math.cos(fy * Math.floor(p / size)) + 0.15 * (rng() - 0.5);
      const val = r[p] ? v + amp : v;
      for (let c = 0; c < 3; c++) x[(i * 3 + c) * px + p] = val;
    }
    y[i * 5] = pos ? 1 : 0;
    mask[i * 5] = 1;
    regions.push(r);
  }
  return { x, y, mask, regions };
}
