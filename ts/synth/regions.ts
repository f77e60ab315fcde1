/**
 * Finding regions of synthetic images: where the generator drew each finding (ts/synth/phantom.ts
 * FINDING_REGION_BITS), kept next to the JPEG as a lossless gray PNG of finding bits in source pixels.
 * The ground truth for attribution checks (ts/explain/localisation.ts): read back onto a model grid
 * with the same geometry as the image (ts/masks/geometry.ts).
 */
import { existsSync } from 'node:fs';
import sharp from 'sharp';
import { computeGeometry, type ResizeMode, sampleMask } from '../masks/geometry.js';
import { writeTreeFile } from './write.js';

/** `<image path without extension>.regions.png`. */
export function regionsPath(imagePath: string): string {
  return imagePath.replace(/\.[^./]+$/, '') + '.regions.png';
}

/** Writes the regions sidecar of the image at `imagePath` (only when some finding was drawn). */
export async function writeRegions(
  imagePath: string,
  regions: Uint8Array,
  width: number,
  height: number,
): Promise<boolean> {
  if (!regions.some((v) => v !== 0)) return false;
  const png = await sharp(Buffer.from(regions.buffer, regions.byteOffset, regions.length), {
    raw: { width, height, channels: 1 },
  })
    .toColourspace('b-w')
    .png({ compressionLevel: 6 })
    .toBuffer();
  await writeTreeFile(regionsPath(imagePath), png);
  return true;
}

/** The finding bits of `imagePath` in source pixels; null when it has no sidecar. */
export async function readRegions(
  imagePath: string,
): Promise<{ data: Uint8Array; width: number; height: number } | null> {
  const file = regionsPath(imagePath);
  if (!existsSync(file)) return null;
  const { data, info } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, info.width * info.height),
    width: info.width,
    height: info.height,
  };
}

/**
 * The finding bits of `imagePath` on a size×size model grid (nearest neighbour, the image's geometry);
 * null when the image has no sidecar (no finding drawn, a lateral, or not a synthetic image).
 */
export async function readRegionsOnGrid(
  imagePath: string,
  size: number,
  mode: ResizeMode,
): Promise<Uint8Array | null> {
  const src = await readRegions(imagePath);
  return src ? sampleMask(src.data, computeGeometry(src.width, src.height, size, mode)) : null;
}
