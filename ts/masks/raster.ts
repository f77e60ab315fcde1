/** Polygon filling and mask-boundary bands on a pixel grid (pixel (i, j) has its centre at x = j, y = i). */

/**
 * Fills a closed polygon (flat [x0, y0, x1, y1, …] in pixel coordinates) into `out` (row-major w×h),
 * OR-ing `value` into the pixels whose centre lies inside (even-odd rule). Clipped to the grid.
 */
export function fillPolygon(
  poly: ArrayLike<number>,
  w: number,
  h: number,
  out: Uint8Array,
  value = 1,
): Uint8Array {
  const n = poly.length >> 1;
  if (n < 3) return out;
  let minY = Number.POSITIVE_INFINITY;
  let maxY = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < n; k++) {
    const y = poly[2 * k + 1];
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  const i0 = Math.max(0, Math.ceil(minY));
  const i1 = Math.min(h - 1, Math.floor(maxY));
  const xs: number[] = [];
  for (let i = i0; i <= i1; i++) {
    xs.length = 0;
    for (let k = 0; k < n; k++) {
      const x0 = poly[2 * k];
      const y0 = poly[2 * k + 1];
      const k1 = k + 1 === n ? 0 : k + 1;
      const x1 = poly[2 * k1];
      const y1 = poly[2 * k1 + 1];
      if ((y0 <= i && i < y1) || (y1 <= i && i < y0)) xs.push(x0 + ((i - y0) * (x1 - x0)) / (y1 - y0));
    }
    if (xs.length < 2) continue;
    xs.sort((a, b) => a - b);
    const row = i * w;
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const ja = Math.max(0, Math.ceil(xs[k]));
      const jb = Math.min(w - 1, Math.floor(xs[k + 1]));
      for (let j = ja; j <= jb; j++) out[row + j] |= value;
    }
  }
  return out;
}

/**
 * The boundary band of a binary mask: mask pixels within `thickness` 4-connected erosion steps of a
 * non-mask pixel of the grid. With thickness 1 these are exactly the mask pixels having a 4-neighbour
 * outside the mask. Pixels beyond the grid edge count as inside (a mask cut by the crop gets no line
 * along the crop). ORs `bit` into `out` (allocated if absent).
 */
export function maskBoundary(
  mask: Uint8Array,
  w: number,
  h: number,
  thickness = 1,
  out?: Uint8Array,
  bit = 1,
): Uint8Array {
  const planes = new Uint8Array(w * h);
  for (let p = 0; p < w * h; p++) planes[p] = mask[p] ? bit : 0;
  return bitsBoundary(planes, w, h, thickness, out);
}

/**
 * maskBoundary of up to eight masks at once, one per bit of `planes` (bit k set: the pixel is in mask
 * k): erosion is the AND of a pixel and its 4-neighbours, which works bit by bit, so one pass per
 * step serves every mask (three region masks cost one mask's time). ORs each band pixel's bits into
 * `out` (allocated if absent); `planes` is left as it is.
 */
export function bitsBoundary(
  planes: Uint8Array,
  w: number,
  h: number,
  thickness = 1,
  out?: Uint8Array,
): Uint8Array {
  const n = w * h;
  const res = out ?? new Uint8Array(n);
  if (thickness <= 0 || n === 0) return res;
  // two buffers take turns; `planes` is only read
  const a = new Uint8Array(n);
  const b = thickness > 1 ? new Uint8Array(n) : a;
  let cur = planes;
  for (let t = 0; t < thickness; t++) {
    const next = cur === a ? b : a;
    for (let i = 0; i < h; i++) {
      const r = i * w;
      // beyond the edge counts as inside: the missing neighbour is the pixel itself
      const up = i > 0 ? r - w : r;
      const dn = i < h - 1 ? r + w : r;
      if (w === 1) {
        next[r] = cur[r] & cur[up] & cur[dn];
        continue;
      }
      next[r] = cur[r] & cur[r + 1] & cur[up] & cur[dn];
      for (let j = 1; j < w - 1; j++) {
        const p = r + j;
        next[p] = cur[p] & cur[p - 1] & cur[p + 1] & cur[up + j] & cur[dn + j];
      }
      const p = r + w - 1;
      next[p] = cur[p] & cur[p - 1] & cur[up + w - 1] & cur[dn + w - 1];
    }
    cur = next;
  }
  for (let p = 0; p < n; p++) res[p] |= planes[p] & ~cur[p];
  return res;
}
