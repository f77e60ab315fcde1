/**
 * Enlarging an 8-bit gray plane the way Pillow's `Image.resize` does it (what torchvision's Resize runs
 * on a PIL image, so what open_clip's transform gives). libvips puts the enlarged pixel centres about
 * half a source pixel away from Pillow's (up to 34/255 apart on a 150×181 image); shrinking already
 * agrees with Pillow within 1/255 and stays in libvips (decodePlane).
 *
 * Pillow's rules, kept here so the bytes match: separable, horizontal pass first; output pixel i samples
 * around source position (i + 0.5)·in/out; taps past an image edge are dropped and the rest
 * renormalised; weights rounded to 22-bit fixed point; each pass rounded and clipped to 8 bits.
 * Only the wanted output window is computed, so a crop of a very long enlarged image costs its window.
 * The passes yield to the event loop every few milliseconds of work: a 2048² output is ≈ 33 M
 * multiply-adds, far longer than a service should go without answering.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** The sharp kernels that have a Pillow filter of the same shape. */
export type PilKernel = 'cubic' | 'linear' | 'lanczos3';

const FILTERS: Record<PilKernel, { support: number; f: (x: number) => number }> = {
  // Pillow's BICUBIC: Keys' cubic with a = −0.5 (Catmull-Rom).
  cubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  linear: {
    support: 1,
    f: (x) => {
      const t = Math.abs(x);
      return t < 1 ? 1 - t : 0;
    },
  },
  lanczos3: {
    support: 3,
    f: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0),
  },
};

function sinc(x: number): number {
  if (x === 0) return 1;
  const p = x * Math.PI;
  return Math.sin(p) / p;
}

export function isPilKernel(kernel: string): kernel is PilKernel {
  return kernel in FILTERS;
}

/** Multiply-adds between yields to the event loop (a few milliseconds). */
const OPS_PER_TURN = 1 << 20;

const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** One axis: for output indices first..first+count−1, the first source index, tap count and fixed-point weights. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  /** `ksize` weights per output index. */
  weights: Int32Array;
  ksize: number;
}

function axisTaps(inSize: number, outSize: number, first: number, count: number, kernel: PilKernel): Taps {
  const { support: base, f } = FILTERS[kernel];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = base * filterScale;
  const ss = 1 / filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(count);
  const n = new Int32Array(count);
  const weights = new Int32Array(count * ksize);
  const w = new Float64Array(ksize);
  for (let o = 0; o < count; o++) {
    const center = (first + o + 0.5) * scale;
    // C's (int) cast truncates toward zero; negatives are clamped to 0 right after.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = f((x + xmin - center + 0.5) * ss);
      sum += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = sum !== 0 ? w[x] / sum : w[x];
      weights[o * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[o] = xmin;
    n[o] = xmax;
  }
  return { start, count: n, weights, ksize };
}

function clip8(v: number): number {
  if (v >= ONE * 256) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** Output window of a resize: `width`×`height` pixels from (`left`, `top`) of the `outW`×`outH` result. */
export interface ResizeWindow {
  outW: number;
  outH: number;
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * `src` (`srcW`×`srcH`, one byte per pixel) resized to `win.outW`×`win.outH` as Pillow would, returning
 * only the window's pixels (row-major, `win.width`×`win.height`).
 */
export async function pilResize(
  src: Uint8Array,
  srcW: number,
  srcH: number,
  win: ResizeWindow,
  kernel: PilKernel,
): Promise<Uint8Array> {
  let ops = 0;
  const turn = async (n: number) => {
    ops += n;
    if (ops >= OPS_PER_TURN) {
      ops = 0;
      await nextTurn();
    }
  };
  const { width, height } = win;
  const out = new Uint8Array(width * height);
  const needH = win.outW !== srcW;
  const needV = win.outH !== srcH;
  const tv = needV ? axisTaps(srcH, win.outH, win.top, height, kernel) : null;
  // The source rows the vertical pass reads (all window rows when there is no vertical pass).
  const rowFirst = tv ? tv.start[0] : win.top;
  const rowEnd = tv ? tv.start[height - 1] + tv.count[height - 1] : win.top + height;
  const rows = rowEnd - rowFirst;
  let mid: Uint8Array;
  let midW: number;
  let midX0: number; // source column of mid's column 0 when there is no horizontal pass
  if (needH) {
    const th = axisTaps(srcW, win.outW, win.left, width, kernel);
    mid = new Uint8Array(width * rows);
    midW = width;
    midX0 = 0;
    for (let y = 0; y < rows; y++) {
      const row = (rowFirst + y) * srcW;
      for (let x = 0; x < width; x++) {
        const s0 = row + th.start[x];
        const k0 = x * th.ksize;
        let ss = HALF;
        for (let k = 0, n = th.count[x]; k < n; k++) ss += src[s0 + k] * th.weights[k0 + k];
        mid[y * width + x] = clip8(ss);
      }
      await turn(width * th.ksize);
    }
  } else {
    mid = src.subarray(rowFirst * srcW, rowEnd * srcW);
    midW = srcW;
    midX0 = win.left;
  }
  if (!tv) {
    for (let y = 0; y < height; y++)
      out.set(mid.subarray(y * midW + midX0, y * midW + midX0 + width), y * width);
    return out;
  }
  // Row by row, tap by tap, so the inner loop walks memory in order.
  const acc = new Float64Array(width);
  for (let y = 0; y < height; y++) {
    acc.fill(HALF);
    const r0 = tv.start[y] - rowFirst;
    const k0 = y * tv.ksize;
    for (let k = 0, n = tv.count[y]; k < n; k++) {
      const w = tv.weights[k0 + k];
      const m0 = (r0 + k) * midW + midX0;
      for (let x = 0; x < width; x++) acc[x] += mid[m0 + x] * w;
    }
    const o = y * width;
    for (let x = 0; x < width; x++) out[o + x] = clip8(acc[x]);
    await turn(width * tv.ksize);
  }
  return out;
}
