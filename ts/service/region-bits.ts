/**
 * Region bit maps on the model grid (bit 1 right lung, 2 left lung, 4 heart) → the contour map that
 * Eq. 1 paints, and a CheXmask row → the same bit map. Both use the raster code the cache and
 * preprocess use, so a predicted mask equal to CheXmask's gives the very same masked tensor.
 */
import type { ChexmaskRow } from '../data/chexmask.js';
import { REGIONS } from '../data/landmarks.js';
import type { Geometry } from '../masks/geometry.js';
import { REGION_BITS, type RegionMasks, regionMasksOnGrid } from '../masks/overlay.js';
import { bitsBoundary } from '../masks/raster.js';

/** Contour bit map (inner band of `thickness` pixels per region) of a size×size region bit map. */
export function contourFromRegionBits(bits: Uint8Array, size: number, thickness: number): Uint8Array {
  const hw = size * size;
  if (bits.length !== hw) throw new Error(`region bits have ${bits.length} pixels, expected ${size}×${size}`);
  let regions = 0;
  for (const r of REGIONS) regions |= REGION_BITS[r];
  // the three regions are eroded together, one bit each (bitsBoundary); other bits are not regions
  const planes = new Uint8Array(hw);
  for (let p = 0; p < hw; p++) planes[p] = bits[p] & regions;
  return bitsBoundary(planes, size, size, thickness);
}

/** The regions of a CheXmask row (or given masks) as one bit map on the output grid. */
export function regionBitsOnGrid(
  src: ChexmaskRow | RegionMasks,
  g: Geometry,
  source: 'landmarks' | 'rle' = 'landmarks',
): Uint8Array {
  const masks = regionMasksOnGrid(src, g, source);
  const out = new Uint8Array(g.outW * g.outH);
  for (const r of REGIONS) {
    const m = masks[r];
    if (!m) continue;
    const bit = REGION_BITS[r];
    for (let p = 0; p < out.length; p++) if (m[p]) out[p] |= bit;
  }
  return out;
}
