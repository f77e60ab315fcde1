/** Geometry of the synthetic phantom: lung and heart outlines as closed point lists. */

/** Closed Catmull-Rom spline through control points (flat [x, y, …]), resampled to n points by arc length. */
export function closedSpline(ctrl: number[], n: number, perSeg = 16): Float64Array {
  const m = ctrl.length >> 1;
  const dense: number[] = [];
  const P = (k: number) => {
    const i = ((k % m) + m) % m;
    return [ctrl[2 * i], ctrl[2 * i + 1]];
  };
  for (let k = 0; k < m; k++) {
    const [x0, y0] = P(k - 1);
    const [x1, y1] = P(k);
    const [x2, y2] = P(k + 1);
    const [x3, y3] = P(k + 2);
    for (let s = 0; s < perSeg; s++) {
      const t = s / perSeg;
      const t2 = t * t;
      const t3 = t2 * t;
      const f = (a: number, b: number, c: number, d: number) =>
        0.5 * (2 * b + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t2 + (-a + 3 * b - 3 * c + d) * t3);
      dense.push(f(x0, x1, x2, x3), f(y0, y1, y2, y3));
    }
  }
  const dn = dense.length >> 1;
  const cum = new Float64Array(dn + 1);
  for (let i = 0; i < dn; i++) {
    const j = (i + 1) % dn;
    cum[i + 1] = cum[i] + Math.hypot(dense[2 * j] - dense[2 * i], dense[2 * j + 1] - dense[2 * i + 1]);
  }
  const total = cum[dn];
  const out = new Float64Array(2 * n);
  let seg = 0;
  for (let k = 0; k < n; k++) {
    const target = (k / n) * total;
    while (seg < dn - 1 && cum[seg + 1] < target) seg++;
    const j = (seg + 1) % dn;
    const len = cum[seg + 1] - cum[seg];
    const t = len > 0 ? (target - cum[seg]) / len : 0;
    out[2 * k] = dense[2 * seg] + t * (dense[2 * j] - dense[2 * seg]);
    out[2 * k + 1] = dense[2 * seg + 1] + t * (dense[2 * j + 1] - dense[2 * seg + 1]);
  }
  return out;
}

/** Control points of an image-left lung in unit coordinates (u: 0 lateral → 1 medial, v: 0 apex → 1 base). */
export const LUNG_CTRL_UV: [number, number][] = [
  [0.62, 0.0],
  [0.86, 0.06],
  [0.97, 0.22],
  [1.0, 0.45],
  [0.98, 0.66],
  [0.94, 0.84],
  [0.76, 0.9],
  [0.46, 0.93],
  [0.17, 0.97],
  [0.02, 1.0],
  [0.0, 0.76],
  [0.03, 0.46],
  [0.14, 0.2],
  [0.34, 0.04],
];
