/**
 * Segmentation quality per structure on the model grid: Dice and HD95. HD95 is medpy's `hd95`: the
 * 95th percentile (linear interpolation, numpy's default) of the distances from each mask's boundary
 * pixels to the other's nearest boundary pixel, both directions pooled, in model-grid pixels
 * (Euclidean, pixel centres). A structure empty in both masks has Dice 1 and HD95 0; empty in exactly
 * one, Dice 0 and HD95 undefined (NaN, left out of means).
 */

import { meanSd, quantile } from '../common/stats.js';
import { REGION_BITS } from '../masks/overlay.js';

export const STRUCTURES = ['rightLung', 'leftLung', 'heart'] as const;
export type Structure = (typeof STRUCTURES)[number];

/** Dice of structure bit `bit` between two region-bit masks of one image. */
export function dice(pred: Uint8Array, ref: Uint8Array, bit: number): number {
  let a = 0;
  let b = 0;
  let both = 0;
  for (let p = 0; p < pred.length; p++) {
    const x = pred[p]! & bit;
    const y = ref[p]! & bit;
    if (x) a++;
    if (y) b++;
    if (x && y) both++;
  }
  return a + b === 0 ? 1 : (2 * both) / (a + b);
}

/** Boundary pixels of structure `bit`: set pixels with a 4-neighbour unset or outside the grid. */
function boundary(m: Uint8Array, s: number, bit: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < s; y++)
    for (let x = 0; x < s; x++) {
      const p = y * s + x;
      if (!(m[p]! & bit)) continue;
      if (
        x === 0 ||
        y === 0 ||
        x === s - 1 ||
        y === s - 1 ||
        !(m[p - 1]! & bit) ||
        !(m[p + 1]! & bit) ||
        !(m[p - s]! & bit) ||
        !(m[p + s]! & bit)
      )
        out.push(p);
    }
  return out;
}

const INF = 1e20;

/** 1-D squared distance transform (Felzenszwalb & Huttenlocher) of f into d. */
function edt1d(f: Float64Array, n: number, d: Float64Array, v: Int32Array, z: Float64Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = -INF;
  z[1] = INF;
  for (let q = 1; q < n; q++) {
    let s = (f[q]! + q * q - (f[v[k]!]! + v[k]! * v[k]!)) / (2 * q - 2 * v[k]!);
    while (s <= z[k]!) {
      k--;
      s = (f[q]! + q * q - (f[v[k]!]! + v[k]! * v[k]!)) / (2 * q - 2 * v[k]!);
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = INF;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1]! < q) k++;
    d[q] = (q - v[k]!) ** 2 + f[v[k]!]!;
  }
}

/** The smallest rectangle of an s-wide grid holding every pixel of `a` and `b`. */
interface Box {
  x0: number;
  y0: number;
  w: number;
  h: number;
}

function boundingBox(a: number[], b: number[], s: number): Box {
  let x0 = s;
  let y0 = s;
  let x1 = -1;
  let y1 = -1;
  for (const pts of [a, b])
    for (const p of pts) {
      const x = p % s;
      const y = (p - x) / s;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  return { x0, y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

/**
 * Squared Euclidean distance to the nearest of `points` (pixels of an s-wide grid) at every pixel of
 * `box`, row-major in the box. Every point lies in the box, so the distances are those of the whole
 * grid: HD95 reads them only at boundary pixels, and a lung's box is a quarter of the grid, the heart's
 * a tenth.
 */
function distanceMap(points: number[], box: Box, s: number): Float64Array {
  const { x0, y0, w, h } = box;
  const g = new Float64Array(w * h).fill(INF);
  for (const p of points) {
    const x = p % s;
    g[((p - x) / s - y0) * w + (x - x0)] = 0;
  }
  const n = Math.max(w, h);
  const f = new Float64Array(n);
  const d = new Float64Array(n);
  const v = new Int32Array(n);
  const z = new Float64Array(n + 1);
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) f[y] = g[y * w + x]!;
    edt1d(f, h, d, v, z);
    for (let y = 0; y < h; y++) g[y * w + x] = d[y]!;
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) f[x] = g[y * w + x]!;
    edt1d(f, w, d, v, z);
    for (let x = 0; x < w; x++) g[y * w + x] = d[x]!;
  }
  return g;
}

/** HD95 of structure `bit` between two region-bit masks of one s×s image, in grid pixels. */
export function hd95(pred: Uint8Array, ref: Uint8Array, s: number, bit: number): number {
  const a = boundary(pred, s, bit);
  const b = boundary(ref, s, bit);
  if (a.length === 0 && b.length === 0) return 0;
  if (a.length === 0 || b.length === 0) return Number.NaN;
  const box = boundingBox(a, b, s);
  const at = (p: number) => {
    const x = p % s;
    return ((p - x) / s - box.y0) * box.w + (x - box.x0);
  };
  const toB = distanceMap(b, box, s);
  const toA = distanceMap(a, box, s);
  const ds = [...a.map((p) => Math.sqrt(toB[at(p)]!)), ...b.map((p) => Math.sqrt(toA[at(p)]!))];
  return quantile(
    ds.sort((x, y) => x - y),
    0.95,
  );
}

/** Per-image, per-structure Dice and HD95 of n masks [n,S,S]. */
export interface SegScores {
  dice: Record<Structure, number[]>;
  hd95: Record<Structure, number[]>;
}

export function emptyScores(): SegScores {
  return {
    dice: { rightLung: [], leftLung: [], heart: [] },
    hd95: { rightLung: [], leftLung: [], heart: [] },
  };
}

export function scoreMasks(
  pred: Uint8Array,
  ref: Uint8Array,
  n: number,
  s: number,
  into = emptyScores(),
): SegScores {
  const hw = s * s;
  for (let i = 0; i < n; i++) {
    const p = pred.subarray(i * hw, (i + 1) * hw);
    const r = ref.subarray(i * hw, (i + 1) * hw);
    for (const st of STRUCTURES) {
      into.dice[st].push(dice(p, r, REGION_BITS[st]));
      into.hd95[st].push(hd95(p, r, s, REGION_BITS[st]));
    }
  }
  return into;
}

export interface Summary {
  mean: number;
  median: number;
  sd: number;
  /** Values that were defined (HD95 is NaN when a structure is missing from one mask). */
  n: number;
}

export function summarize(xs: number[]): Summary {
  const { mean, sd, n } = meanSd(xs);
  const sorted = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return { mean, median: n ? quantile(sorted, 0.5) : Number.NaN, sd, n };
}

/** Mean Dice per structure of a score set (validation's selection metric: their mean). */
export function meanDice(s: SegScores): Record<Structure, number> & { mean: number } {
  const r = {} as Record<Structure, number>;
  for (const st of STRUCTURES) r[st] = summarize(s.dice[st]).mean;
  return { ...r, mean: (r.rightLung + r.leftLung + r.heart) / 3 };
}
