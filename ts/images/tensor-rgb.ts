/** A normalised NCHW image tensor back to 8-bit RGB for display: min–max rescaled to 0–255 over all channels. */
export function tensorToRgb(x: Float32Array, size: number, offset = 0): Buffer {
  const hw = size * size;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < 3 * hw; i++) {
    const v = x[offset + i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  const out = Buffer.alloc(hw * 3);
  for (let p = 0; p < hw; p++) {
    for (let c = 0; c < 3; c++) out[p * 3 + c] = Math.round((x[offset + c * hw + p]! - lo) * scale);
  }
  return out;
}
