/**
 * The size a compressed DICOM frame declares in its own header, read without decoding: a decoder
 * allocates what the frame says, not what the DICOM Rows × Columns say, so the two are compared first.
 * JPEG (baseline, lossless): the SOF segment. JPEG 2000: the SIZ segment of the codestream (inside a
 * JP2 wrapper's `jp2c` box when there is one).
 */

export interface FrameHeader {
  width: number;
  height: number;
  /** Components in the frame (JPEG Nf, JPEG 2000 Csiz). */
  components: number;
  /** Components in the first scan (JPEG Ns); equal to `components` for JPEG 2000. */
  scanComponents: number;
}

export class CodestreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodestreamError';
  }
}

const hex = (m: number) => `FF${m.toString(16).toUpperCase().padStart(2, '0')}`;

/** SOF0–SOF15 less DHT (C4), JPG (C8) and DAC (CC). */
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
/**
 * Segments allowed before the first scan: tables (DHT, DAC, DQT), DRI, APPn and COM. Anything else is
 * refused rather than skipped, so that a decoder that walks markers loosely (jpeg-lossless-decoder-js
 * does not skip unknown segments) cannot find a different SOF than this reader did.
 */
const isTable = (m: number) =>
  m === 0xc4 || m === 0xcc || m === 0xdb || m === 0xdd || (m >= 0xe0 && m <= 0xef) || m === 0xfe;

/** The frame size of a JPEG codestream (SOI, then segments up to the first SOS); exactly one SOF. */
export function jpegFrameHeader(b: Uint8Array): FrameHeader {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8)
    throw new CodestreamError('JPEG frame has no SOI marker');
  let sof: Omit<FrameHeader, 'scanComponents'> | null = null;
  let p = 2;
  for (;;) {
    if (p + 4 > b.length) throw new CodestreamError('JPEG frame ends before its first scan');
    if (b[p] !== 0xff) throw new CodestreamError(`JPEG frame has no marker at byte ${p}`);
    const m = b[p + 1];
    const len = (b[p + 2] << 8) | b[p + 3];
    if (len < 2 || p + 2 + len > b.length)
      throw new CodestreamError(`JPEG segment ${hex(m)} at byte ${p} has a bad length (${len})`);
    const body = p + 4;
    if (isSof(m)) {
      if (sof) throw new CodestreamError('JPEG frame has more than one SOF marker');
      if (len < 8) throw new CodestreamError(`JPEG SOF segment is too short (${len})`);
      sof = {
        height: (b[body + 1] << 8) | b[body + 2],
        width: (b[body + 3] << 8) | b[body + 4],
        components: b[body + 5],
      };
    } else if (m === 0xda) {
      if (!sof) throw new CodestreamError('JPEG frame reaches its first scan without an SOF marker');
      return { ...sof, scanComponents: b[body] };
    } else if (!isTable(m)) {
      throw new CodestreamError(`JPEG frame has an unexpected marker ${hex(m)} before its first scan`);
    }
    p += 2 + len;
  }
}

const u32 = (b: Uint8Array, p: number) =>
  ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;

/** Where the raw codestream starts: 0, or the contents of a JP2 file's `jp2c` box. */
function j2kCodestreamStart(b: Uint8Array): number {
  if (b[0] === 0xff && b[1] === 0x4f) return 0;
  // JP2 boxes: LBox (4), TBox (4), XLBox (8) when LBox is 1; LBox 0 runs to the end.
  let p = 0;
  while (p + 8 <= b.length) {
    const lbox = u32(b, p);
    const type = String.fromCharCode(b[p + 4], b[p + 5], b[p + 6], b[p + 7]);
    let head = 8;
    let size = lbox;
    if (lbox === 1) {
      if (p + 16 > b.length) break;
      head = 16;
      size = u32(b, p + 8) * 2 ** 32 + u32(b, p + 12);
    } else if (lbox === 0) size = b.length - p;
    if (type === 'jp2c') return p + head;
    if (size < head) break;
    p += size;
  }
  throw new CodestreamError('JPEG 2000 frame is neither a codestream (FF4F) nor a JP2 file with a jp2c box');
}

/**
 * The most tiles a JPEG 2000 frame may have. OpenJPEG allocates the coding parameters of every tile
 * when it reads SIZ, before any data: 52,250 tiles of 12×12 on a 3000×2500 frame took 535 MB that the
 * WebAssembly heap never gives back. Real X-rays have one tile, or a few of 256² and up; 4,096 still
 * allows 47×47 tiles on 3000×2500.
 */
export const MAX_J2K_TILES = 4096;

/** The image size of a JPEG 2000 codestream from its SIZ segment (which must follow SOC). */
export function j2kFrameHeader(b: Uint8Array): FrameHeader {
  const s = j2kCodestreamStart(b);
  // SOC, SIZ marker, Lsiz (2), Rsiz (2), Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz (4 each), Csiz (2)
  if (s + 42 > b.length || b[s] !== 0xff || b[s + 1] !== 0x4f || b[s + 2] !== 0xff || b[s + 3] !== 0x51)
    throw new CodestreamError('JPEG 2000 codestream does not start with SOC and SIZ markers');
  const x = u32(b, s + 8);
  const y = u32(b, s + 12);
  const x0 = u32(b, s + 16);
  const y0 = u32(b, s + 20);
  if (x0 > x || y0 > y)
    throw new CodestreamError(`JPEG 2000 SIZ offsets (${x0}, ${y0}) lie outside the image`);
  const [tw, th, tx0, ty0] = [u32(b, s + 24), u32(b, s + 28), u32(b, s + 32), u32(b, s + 36)];
  if (tw === 0 || th === 0) throw new CodestreamError(`JPEG 2000 SIZ tile size is ${tw}×${th}`);
  const tiles = Math.ceil((x - tx0) / tw) * Math.ceil((y - ty0) / th);
  if (tx0 > x0 || ty0 > y0 || tiles > MAX_J2K_TILES)
    throw new CodestreamError(
      tiles > MAX_J2K_TILES
        ? `JPEG 2000 frame has ${tiles} tiles of ${tw}×${th}; more than ${MAX_J2K_TILES} are refused (the decoder allocates every tile up front)`
        : `JPEG 2000 SIZ tile offsets (${tx0}, ${ty0}) lie past the image offsets (${x0}, ${y0})`,
    );
  const components = (b[s + 40] << 8) | b[s + 41];
  return { width: x - x0, height: y - y0, components, scanComponents: components };
}
