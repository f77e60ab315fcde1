/**
 * One decoded X-ray, whatever its file form, as a grayscale sharp pipeline on the 0–255 scale: JPEG and
 * 8-bit PNG as they are (RGBA and palette PNGs made gray, alpha dropped), 16-bit PNG stretched from its
 * real bit depth (bit-depth.ts), DICOM through its rescale, VOI window and photometric interpretation
 * (dicom.ts).
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import { gray16To8, pngSignificantBits } from './bit-depth.js';
import { decodeDicom, isDicom } from './dicom.js';

export interface ImageSource {
  width: number;
  height: number;
  /** Bits per sample the values were scaled from (8 for 8-bit images). */
  bits: number;
  /** A fresh pipeline: grayscale, 8-bit. */
  open(): Sharp;
}

/**
 * `maxPixels` is handed to sharp too, so its decoders stop at the same cap the header check used.
 * `header`: sharp's metadata of `buf` when the caller has it (checkedImage), so it is not parsed twice.
 */
export async function imageSource(
  buf: Buffer,
  maxPixels: number | false = false,
  header?: Metadata,
): Promise<ImageSource> {
  const opts = { failOn: 'warning' as const, limitInputPixels: maxPixels };
  if (isDicom(buf)) {
    const d = await decodeDicom(buf);
    const raw = { width: d.width, height: d.height, channels: 1 as const };
    return {
      width: d.width,
      height: d.height,
      bits: d.bitsStored,
      open: () => sharp(d.gray, { raw }).grayscale(),
    };
  }
  const meta = header ?? (await sharp(buf, { limitInputPixels: maxPixels }).metadata());
  if (!meta.width || !meta.height) throw new Error('image has no size');
  if (meta.depth !== 'ushort')
    return {
      width: meta.width,
      height: meta.height,
      bits: 8,
      open: () => sharp(buf, opts).grayscale(),
    };
  // 16-bit: sharp's own gray conversion keeps the top 8 bits, which leaves 12-bit data nearly black, so
  // the samples are read at 16 bits and scaled from the real depth, in the addon off the JS thread (bit-depth.ts).
  const { data, info } = await sharp(buf, opts)
    .toColourspace('grey16')
    .removeAlpha() // grey+alpha, RGBA or tRNS: the alpha is dropped, as for 8-bit PNGs
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) throw new Error(`16-bit image decoded to ${info.channels} channels`);
  const values = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
  const { bits, gray } = await gray16To8(values, pngSignificantBits(buf));
  const raw = { width: info.width, height: info.height, channels: 1 as const };
  return { width: info.width, height: info.height, bits, open: () => sharp(gray, { raw }).grayscale() };
}
