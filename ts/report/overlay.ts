/**
 * Figure-1 style example: one test image as the model sees it, original next to masked (contours
 * drawn by the data layer), read back from the image cache. Tensors are normalised NCHW; for display
 * each image is min–max rescaled to 0–255 over all channels.
 */

import sharp from 'sharp';
import type { CacheLike } from '../experiment/backend.js';
import { tensorToRgb } from '../images/tensor-rgb.js';

/** Side-by-side PNG (original | masked) of cache row `index`; null if the row cannot be read. */
export async function overlayExamplePng(cache: CacheLike, index: number): Promise<Buffer | null> {
  try {
    const o = await cache.batch([index], 'original');
    const m = await cache.batch([index], 'masked');
    const size = Math.round(Math.sqrt(o.x.length / 3));
    if (size * size * 3 !== o.x.length) return null;
    const gap = 8;
    const a = tensorToRgb(o.x, size);
    const b = tensorToRgb(m.x, size);
    const W = size * 2 + gap;
    const out = Buffer.alloc(W * size * 3, 255);
    for (let yy = 0; yy < size; yy++) {
      a.copy(out, yy * W * 3, yy * size * 3, (yy + 1) * size * 3);
      b.copy(out, (yy * W + size + gap) * 3, yy * size * 3, (yy + 1) * size * 3);
    }
    return await sharp(out, { raw: { width: W, height: size, channels: 3 } })
      .png()
      .toBuffer();
  } catch {
    return null;
  }
}

/** A test row with at least one positive finding (the first one), else the first test row. */
export function pickExample(cache: CacheLike): number | null {
  const test = cache.indicesOf('test');
  for (const i of test) {
    const l = cache.entries[i]?.labels;
    if (Array.isArray(l) && l.some((v) => v > 0.5)) return i;
  }
  return test[0] ?? null;
}
