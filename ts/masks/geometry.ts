/**
 * The geometric part of preprocessing: how a source W×H image maps onto the output grid, exactly as
 * torchvision does it (Resize(size) on the shortest side with int() truncation of the long side, then
 * CenterCrop with Python round()), or a plain squash to size×size (the paper's variant).
 */
export type ResizeMode = 'shortest-crop' | 'squash';

/** How a source image maps onto the model grid: its size, the size after resizing, and the crop. */
export interface Geometry {
  srcW: number;
  srcH: number;
  /** Size after resizing, before cropping. */
  resizeW: number;
  resizeH: number;
  /** Crop offset in the resized image. */
  left: number;
  top: number;
  /** Output grid. */
  outW: number;
  outH: number;
}

/** Python 3 round(): half to even. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function computeGeometry(srcW: number, srcH: number, size: number, mode: ResizeMode): Geometry {
  if (mode === 'squash') {
    return { srcW, srcH, resizeW: size, resizeH: size, left: 0, top: 0, outW: size, outH: size };
  }
  let resizeW: number;
  let resizeH: number;
  if (srcW <= srcH) {
    resizeW = size;
    resizeH = Math.trunc((size * srcH) / srcW);
  } else {
    resizeH = size;
    resizeW = Math.trunc((size * srcW) / srcH);
  }
  const top = pyRound((resizeH - size) / 2);
  const left = pyRound((resizeW - size) / 2);
  return { srcW, srcH, resizeW, resizeH, left, top, outW: size, outH: size };
}

/** Identity geometry: draw on the source grid itself. */
export function identityGeometry(srcW: number, srcH: number): Geometry {
  return { srcW, srcH, resizeW: srcW, resizeH: srcH, left: 0, top: 0, outW: srcW, outH: srcH };
}

/** Maps flat [x, y, …] source pixel coordinates to output-grid pixel coordinates (pixel-centre convention). */
export function mapPoints(pts: ArrayLike<number>, g: Geometry): Float64Array {
  const sx = g.resizeW / g.srcW;
  const sy = g.resizeH / g.srcH;
  const out = new Float64Array(pts.length);
  for (let k = 0; k < pts.length; k += 2) {
    out[k] = (pts[k] + 0.5) * sx - 0.5 - g.left;
    out[k + 1] = (pts[k + 1] + 0.5) * sy - 0.5 - g.top;
  }
  return out;
}

/** Nearest-neighbour resampling of a source-grid mask onto the output grid (same mapping as mapPoints). */
export function sampleMask(src: Uint8Array, g: Geometry): Uint8Array {
  const out = new Uint8Array(g.outW * g.outH);
  const fx = g.srcW / g.resizeW;
  const fy = g.srcH / g.resizeH;
  const xs = new Int32Array(g.outW);
  for (let j = 0; j < g.outW; j++)
    xs[j] = Math.min(g.srcW - 1, Math.max(0, Math.floor((j + g.left + 0.5) * fx)));
  for (let i = 0; i < g.outH; i++) {
    const y = Math.min(g.srcH - 1, Math.max(0, Math.floor((i + g.top + 0.5) * fy)));
    const srow = y * g.srcW;
    const orow = i * g.outW;
    for (let j = 0; j < g.outW; j++) out[orow + j] = src[srow + xs[j]];
  }
  return out;
}
