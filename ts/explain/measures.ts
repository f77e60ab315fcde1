/**
 * Numbers about one attribution map [S,S] (non-negative, ts/model/attribution.ts): how much of its
 * mass a region holds, whether its peak falls in the region (pointing game, Zhang et al. 2018), and
 * rank agreement of two maps (Spearman, for the Adebayo et al. 2018 randomisation checks).
 */

/** Share of the map's mass inside `region` (pixels where region[p] & bits); NaN for an all-zero map. */
export function massInside(map: ArrayLike<number>, region: ArrayLike<number>, bits = 0xff): number {
  let inside = 0;
  let total = 0;
  for (let p = 0; p < map.length; p++) {
    const v = Math.abs(map[p]!);
    total += v;
    if (region[p]! & bits) inside += v;
  }
  return total > 0 ? inside / total : Number.NaN;
}

/** Share of pixels in the region: the mass share a map spread evenly would get (chance level). */
export function areaShare(region: ArrayLike<number>, bits = 0xff): number {
  let n = 0;
  for (let p = 0; p < region.length; p++) if (region[p]! & bits) n++;
  return region.length > 0 ? n / region.length : Number.NaN;
}

/**
 * Pointing game: 1 when the map's maximum lies in the region (within `tolerance` pixels, Chebyshev),
 * else 0. The peak is taken after a box blur of radius `smooth` (single-pixel gradient spikes are noise).
 * Chance level: areaShare of the region dilated by `tolerance`.
 */
export function pointingHit(
  map: ArrayLike<number>,
  region: ArrayLike<number>,
  size: number,
  { bits = 0xff, tolerance = 0, smooth = 2 } = {},
): number {
  const m = boxBlur(map, size, smooth);
  let best = -Infinity;
  let at = 0;
  for (let p = 0; p < m.length; p++)
    if (m[p]! > best) {
      best = m[p]!;
      at = p;
    }
  const y = Math.floor(at / size);
  const x = at % size;
  for (let i = Math.max(0, y - tolerance); i <= Math.min(size - 1, y + tolerance); i++)
    for (let j = Math.max(0, x - tolerance); j <= Math.min(size - 1, x + tolerance); j++)
      if (region[i * size + j]! & bits) return 1;
  return 0;
}

/** Mean over a (2r+1)² window (clipped at the borders), via a summed-area table. */
export function boxBlur(map: ArrayLike<number>, size: number, r: number): Float64Array {
  const out = new Float64Array(size * size);
  if (r <= 0) {
    for (let p = 0; p < out.length; p++) out[p] = map[p]!;
    return out;
  }
  const sat = new Float64Array((size + 1) * (size + 1));
  for (let i = 0; i < size; i++) {
    let row = 0;
    for (let j = 0; j < size; j++) {
      row += map[i * size + j]!;
      sat[(i + 1) * (size + 1) + j + 1] = sat[i * (size + 1) + j + 1]! + row;
    }
  }
  for (let i = 0; i < size; i++) {
    const i0 = Math.max(0, i - r);
    const i1 = Math.min(size, i + r + 1);
    for (let j = 0; j < size; j++) {
      const j0 = Math.max(0, j - r);
      const j1 = Math.min(size, j + r + 1);
      const s =
        sat[i1 * (size + 1) + j1]! -
        sat[i0 * (size + 1) + j1]! -
        sat[i1 * (size + 1) + j0]! +
        sat[i0 * (size + 1) + j0]!;
      out[i * size + j] = s / ((i1 - i0) * (j1 - j0));
    }
  }
  return out;
}

/** Average ranks (ties share their mean rank), 1-based. */
function ranks(v: ArrayLike<number>): Float64Array {
  const idx = Array.from({ length: v.length }, (_, i) => i).sort((a, b) => v[a]! - v[b]!);
  const r = new Float64Array(v.length);
  for (let k = 0; k < idx.length; ) {
    let e = k;
    while (e + 1 < idx.length && v[idx[e + 1]!]! === v[idx[k]!]!) e++;
    const mean = (k + e) / 2 + 1;
    for (let t = k; t <= e; t++) r[idx[t]!] = mean;
    k = e + 1;
  }
  return r;
}

/** Spearman rank correlation of two equally long maps (Pearson of average ranks); NaN if one is constant. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`maps differ in length: ${a.length} vs ${b.length}`);
  const ra = ranks(a);
  const rb = ranks(b);
  const n = ra.length;
  const mean = (n + 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = ra[i]! - mean;
    const y = rb[i]! - mean;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : Number.NaN;
}
