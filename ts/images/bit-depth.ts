/**
 * The real bit depth of a 16-bit grayscale image. PadChest's PNGs hold 12-bit detector values in 16-bit
 * samples, so dividing by 65535 would leave them nearly black: the depth is read from the PNG's sBIT
 * chunk when it has one, else taken as the fewest bits that hold the image's largest value (at least 8).
 */
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

/** Bits needed for `max` (at least 8). */
export function bitsFor(max: number): number {
  let bits = 8;
  while (bits < 16 && max > 2 ** bits - 1) bits++;
  return bits;
}
