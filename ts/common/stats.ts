/** Summary statistics shared by the metrics, the bootstrap and the segmenter's quality numbers. */

/** Mean of the finite values; NaN when none. */
export function nanMean(xs: ArrayLike<number>): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    if (Number.isFinite(v)) {
      s += v;
      c++;
    }
  }
  return c > 0 ? s / c : Number.NaN;
}

/** Linear interpolation between the order statistics of an ascending array; NaN when empty. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Mean and sample standard deviation (n−1) of the finite values; sd = 0 for one value, NaN for none. */
export function meanSd(xs: number[]): { mean: number; sd: number; n: number } {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { mean: Number.NaN, sd: Number.NaN, n: 0 };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, sd, n: v.length };
}
