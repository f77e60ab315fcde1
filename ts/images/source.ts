/**
 * One decoded X-ray, whatever its file form, as a grayscale sharp pipeline on the 0–255 scale: JPEG and
 * 8-bit PNG as they are (RGBA and palette PNGs made gray), 16-bit PNG stretched from its real bit depth
 * (bit-depth.ts), DICOM through its rescale, VOI window and photometric interpretation (dicom.ts). An
 * image with alpha, 8 or 16 bits, is composited onto black: a transparent pixel reads black.
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import { gray16To8, pngSignificantBits } from './bit-depth.js';
import { decodeDicom, isDicom } from './dicom.js';

const BLACK = '#000000';

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
      // Alpha composited onto black first (see the 16-bit case): sharp alone would keep a transparent
      // pixel's gray when nothing is resized and darken it only through a resize.
      open: () =>
        (meta.hasAlpha ? sharp(buf, opts).flatten({ background: BLACK }) : sharp(buf, opts)).grayscale(),
    };
  // 16-bit: sharp's own gray conversion keeps the top 8 bits, which leaves 12-bit data nearly black, so
  // the samples are read at 16 bits and scaled from the real depth, in the addon off the JS thread (bit-depth.ts).
  const { data, info } = await sharp(buf, opts)
    .toColourspace('grey16')
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = info;
  if (channels !== 1 && channels !== 2) throw new Error(`16-bit image decoded to ${channels} channels`);
  const u16 = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
  const sbit = pngSignificantBits(buf);
  const one = { width, height, channels: 1 as const };
  if (channels === 1) {
    const { bits, gray } = await gray16To8(u16, sbit);
    return { width, height, bits, open: () => sharp(gray, { raw: one }).grayscale() };
  }
  // Grey+alpha, RGBA or tRNS: the depth is found from the gray alone (a transparent bright area must not
  // change it), then gray and alpha, both at 8 bits, are composited as an 8-bit PNG is, so both depths
  // of one picture read alike.
  const band = (c: 0 | 1) =>
    sharp(u16, { raw: { width, height, channels: 2 } })
      .extractChannel(c)
      .toColourspace('grey16') // else the band is read back as 8-bit
      .raw({ depth: 'ushort' })
      .toBuffer()
      .then((b) => new Uint16Array(b.buffer, b.byteOffset, b.length / 2));
  const { bits, gray } = await gray16To8(await band(0), sbit);
  const alpha = (await gray16To8(await band(1), 16)).gray;
  // Interleaved here: sharp would join a channel only after flattening in one pipeline.
  const la = await sharp(gray, { raw: one }).joinChannel(alpha, { raw: one }).raw().toBuffer();
  const two = { width, height, channels: 2 as const };
  return {
    width,
    height,
    bits,
    open: () => sharp(la, { raw: two }).flatten({ background: BLACK }).grayscale(),
  };
}
