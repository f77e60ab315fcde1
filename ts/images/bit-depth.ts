/**
 * The real bit depth of a 16-bit grayscale image. PadChest's PNGs hold 12-bit detector values in 16-bit
 * samples, so dividing by 65535 would leave them nearly black: the depth is read from the PNG's sBIT
 * chunk when it has one, else taken as the fewest bits that hold the image's largest value (at least 8).
 */
import { loadNative } from '../native.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The significant bits a PNG's sBIT chunk states (its first channel), or null when it has none. */
export function pngSignificantBits(buf: Buffer): number | null {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) return null;
  let p = 8;
  while (p + 8 <= buf.length) {
    const len = buf.readUInt32BE(p);
    const type = buf.toString('latin1', p + 4, p + 8);
    if (type === 'IDAT' || type === 'IEND') return null; // sBIT comes before the image data
    if (type === 'sBIT' && len >= 1 && p + 9 <= buf.length) {
      const bits = buf[p + 8];
      return bits >= 1 && bits <= 16 ? bits : null;
    }
    p += 12 + len;
  }
  return null;
}

/**
 * A 16-bit gray plane scaled to 0–255 (`gray`, one byte per pixel: min(255, round(v · 255 / (2^bits − 1))))
 * and the bits it was scaled from. Without an sBIT chunk (`sbit` null): the fewest bits (at least 8) that
 * hold the largest value. With one, two layouts exist. The PNG spec has the encoder scale the samples up
 * to the full 16 bits (sBIT then records the original precision only): values above 2^sbit − 1, or low
 * 16 − sbit bits all zero, read as 16 bits. Other writers leave the values in the low `sbit` bits: those
 * read as `sbit` bits. Both passes over the pixels run in the addon on a libuv pool thread: as JS loops
 * they held the event loop for ≈40–60 ms per image at 2500×3000, up to ≈1 s at 49 MP.
 */
export function gray16To8(values: Uint16Array, sbit: number | null): Promise<{ bits: number; gray: Buffer }> {
  return loadNative().gray16To8(values, sbit);
}
