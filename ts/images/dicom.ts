/**
 * DICOM X-rays (VinDr-CXR ships .dicom files) to an 8-bit gray plane, the way CheXmask prepared them:
 * stored values shifted down to High Bit and masked to Bits Stored (sign-extended when signed), Rescale
 * Slope/Intercept applied, then the first VOI window (Window Center/Width, LINEAR, LINEAR_EXACT or
 * SIGMOID), or without one the first VOI LUT of the VOI LUT Sequence, or without either the image's own
 * min–max, and inverted where Presentation LUT Shape says INVERSE (without one: MONOCHROME1) so that bone
 * is bright, as DCMTK renders it. Parsing is dicom-parser's;
 * JPEG Lossless frames are decoded by jpeg-lossless-decoder-js, JPEG 2000 by OpenJPEG (WASM) and
 * baseline JPEG by sharp. Any other transfer syntax is refused with the conversion that fixes it.
 */
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { type DicomCells, loadNative } from '../native.js';
import { CodestreamError, type FrameHeader, j2kFrameHeader, jpegFrameHeader } from './codestream.js';

const require = createRequire(import.meta.url);

/** The parts of dicom-parser's DataSet used here (the package ships no types). */
interface DicomElement {
  tag: string;
  dataOffset: number;
  length: number;
  encapsulatedPixelData?: boolean;
  /** A sequence's items (SQ). */
  items?: { dataSet: DicomDataSet }[];
  fragments?: unknown[];
  basicOffsetTable?: number[];
}
interface DicomDataSet {
  byteArray: Uint8Array;
  elements: Record<string, DicomElement>;
  uint16(tag: string, index?: number): number | undefined;
  string(tag: string, index?: number): string | undefined;
  floatString(tag: string, index?: number): number | undefined;
  intString(tag: string, index?: number): number | undefined;
}
interface DicomParser {
  parseDicom(bytes: Uint8Array, options?: unknown): DicomDataSet;
  readEncapsulatedImageFrame(ds: DicomDataSet, el: DicomElement, frame: number): Uint8Array;
  readEncapsulatedPixelDataFromFragments(
    ds: DicomDataSet,
    el: DicomElement,
    start: number,
    count?: number,
  ): Uint8Array;
}

export const TRANSFER_SYNTAX = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  explicitBE: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  jpeg2000: '1.2.840.10008.1.2.4.91',
} as const;

/** How to get a file this reader takes from one it refuses. */
export const DICOM_CONVERSION =
  'convert it to uncompressed little-endian first, e.g. `gdcmconv --raw in.dicom out.dicom` (GDCM) or `dcmdjpeg`/`dcmdjpls`/`dcmdrle in.dicom out.dicom` (DCMTK)';

/** Largest image decoded (rows × columns), well above real chest X-rays. */
export const DICOM_MAX_PIXELS = 100_000_000;

export class DicomError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DicomError';
  }
}

/** "DICM" at byte 128 (a DICOM Part 10 file). */
export function isDicom(buf: Uint8Array): boolean {
  return (
    buf.length >= 132 && buf[128] === 0x44 && buf[129] === 0x49 && buf[130] === 0x43 && buf[131] === 0x4d
  );
}

export interface DicomImage {
  width: number;
  height: number;
  /** width × height, 0–255, bright = dense. */
  gray: Uint8Array;
  photometric: string;
  transferSyntax: string;
  bitsStored: number;
  /** The VOI window applied ([center, width]) or null when min–max scaling was used. */
  window: [number, number] | null;
}

let openjpeg: Promise<{ J2KDecoder: new () => J2KDecoder }> | null = null;
interface J2KDecoder {
  getEncodedBuffer(n: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): {
    width: number;
    height: number;
    bitsPerSample: number;
    componentCount: number;
    isSigned: boolean;
  };
  delete?(): void;
}

/**
 * Reads a compressed frame's own header and refuses it unless it is exactly Rows × Columns (and, where
 * asked, one component): the decoders allocate what the frame declares, so a 64×64 DICOM could
 * otherwise carry a 16383×16383 frame.
 */
function checkFrame(
  read: (b: Uint8Array) => FrameHeader,
  frame: Uint8Array,
  codec: string,
  width: number,
  height: number,
  gray: boolean,
): void {
  let h: FrameHeader;
  try {
    h = read(frame);
  } catch (e) {
    if (e instanceof CodestreamError) throw new DicomError(`${codec} frame header: ${e.message}`);
    throw e;
  }
  if (h.width !== width || h.height !== height)
    throw new DicomError(
      `${codec} frame is ${h.width}×${h.height}, the DICOM header says ${width}×${height} (Columns × Rows); refusing to decode it`,
    );
  if (gray && (h.components !== 1 || h.scanComponents !== 1))
    throw new DicomError(`${codec} frame has ${h.components} components, a gray X-ray has 1`);
}

/** Uncompressed samples (implicit/explicit VR, either byte order), read in place where the host allows. */
function nativeSamples(
  ds: DicomDataSet,
  el: DicomElement,
  ts: string,
  n: number,
  bitsAllocated: number,
  signed: boolean,
): DicomCells {
  const bytes = (bitsAllocated / 8) * n;
  if (el.dataOffset + bytes > ds.byteArray.length || el.length < bytes)
    throw new DicomError(`pixel data holds ${el.length} bytes, ${bytes} needed for the image size`);
  const raw = ds.byteArray.subarray(el.dataOffset, el.dataOffset + bytes);
  if (bitsAllocated === 8) return signed ? new Int8Array(raw.buffer, raw.byteOffset, n) : raw;
  const little = ts !== TRANSFER_SYNTAX.explicitBE;
  // little-endian samples on a little-endian host are read in place (copied when unaligned)
  if (little && new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    const aligned = raw.byteOffset % 2 === 0 ? raw : raw.slice();
    return signed
      ? new Int16Array(aligned.buffer, aligned.byteOffset, n)
      : new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, bytes);
  const out = signed ? new Int16Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = signed ? view.getInt16(2 * i, little) : view.getUint16(2 * i, little);
  return out;
}

/** A JPEG Lossless frame (process 14), decoded by jpeg-lossless-decoder-js. */
function jpegLosslessSamples(
  frame: Uint8Array,
  width: number,
  height: number,
  bitsAllocated: number,
  signed: boolean,
): DicomCells {
  const n = width * height;
  checkFrame(jpegFrameHeader, frame, 'JPEG Lossless', width, height, true);
  const { Decoder } = require('jpeg-lossless-decoder-js') as {
    Decoder: new () => { decode(b: ArrayBuffer, off: number, len: number, bytes: number): ArrayBufferView };
  };
  const bytes = bitsAllocated <= 8 ? 1 : 2;
  const out = new Decoder().decode(frame.buffer as ArrayBuffer, frame.byteOffset, frame.length, bytes);
  if (bytes === 1) return new Uint8Array(out.buffer, out.byteOffset, n);
  return signed
    ? new Int16Array(out.buffer, out.byteOffset, n)
    : new Uint16Array(out.buffer, out.byteOffset, n);
}

/** A JPEG 2000 frame, decoded by OpenJPEG (WebAssembly, loaded on first use). */
async function jpeg2000Samples(frame: Uint8Array, width: number, height: number): Promise<DicomCells> {
  const n = width * height;
  openjpeg ??= (
    require('@cornerstonejs/codec-openjpeg/wasmjs') as (
      o: unknown,
    ) => Promise<{ J2KDecoder: new () => J2KDecoder }>
  )({
    print: () => {},
    printErr: () => {},
  });
  checkFrame(j2kFrameHeader, frame, 'JPEG 2000', width, height, true);
  const { J2KDecoder } = await openjpeg;
  const d = new J2KDecoder();
  try {
    d.getEncodedBuffer(frame.length).set(frame);
    d.decode();
    const info = d.getFrameInfo();
    // OpenJPEG reports a stream it could not decode (truncated, corrupt) as a 0×0 frame, not an error
    if (info.width === 0 || info.height === 0)
      throw new DicomError('JPEG 2000 frame could not be decoded (a truncated or corrupt codestream)');
    if (info.width * info.height !== n || info.componentCount !== 1)
      throw new DicomError(
        `JPEG 2000 frame is ${info.width}×${info.height}×${info.componentCount}, the header says ${n} gray pixels`,
      );
    const out = d.getDecodedBuffer();
    const copy = out.slice();
    if (info.bitsPerSample <= 8) return copy;
    return info.isSigned ? new Int16Array(copy.buffer, 0, n) : new Uint16Array(copy.buffer, 0, n);
  } finally {
    d.delete?.();
  }
}

/** A baseline (8-bit lossy) JPEG frame, decoded by sharp. */
async function jpegBaselineSamples(frame: Uint8Array, width: number, height: number): Promise<DicomCells> {
  const n = width * height;
  checkFrame(jpegFrameHeader, frame, 'JPEG', width, height, false);
  // sharp's own cap as a second guard, in case libjpeg reads a size this reader did not
  const { data, info } = await sharp(frame, { limitInputPixels: n, failOn: 'warning' })
    .grayscale()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width * info.height !== n) throw new DicomError('JPEG frame size differs from Rows × Columns');
  return data;
}

/** The stored sample values of frame 0, as read from the file (before masking to Bits Stored). */
async function storedValues(
  parser: DicomParser,
  ds: DicomDataSet,
  el: DicomElement,
  ts: string,
  width: number,
  height: number,
  bitsAllocated: number,
  signed: boolean,
): Promise<DicomCells> {
  if (
    ts === TRANSFER_SYNTAX.implicitLE ||
    ts === TRANSFER_SYNTAX.explicitLE ||
    ts === TRANSFER_SYNTAX.explicitBE
  )
    return nativeSamples(ds, el, ts, width * height, bitsAllocated, signed);
  if (!el.encapsulatedPixelData)
    throw new DicomError(`transfer syntax ${ts} needs encapsulated pixel data, the file has none`);
  const frame =
    el.basicOffsetTable && el.basicOffsetTable.length > 0
      ? parser.readEncapsulatedImageFrame(ds, el, 0)
      : parser.readEncapsulatedPixelDataFromFragments(ds, el, 0, el.fragments?.length ?? 0);
  if (ts === TRANSFER_SYNTAX.jpegLossless || ts === TRANSFER_SYNTAX.jpegLosslessSV1)
    return jpegLosslessSamples(frame, width, height, bitsAllocated, signed);
  if (ts === TRANSFER_SYNTAX.jpeg2000Lossless || ts === TRANSFER_SYNTAX.jpeg2000)
    return jpeg2000Samples(frame, width, height);
  if (ts === TRANSFER_SYNTAX.jpegBaseline) return jpegBaselineSamples(frame, width, height);
  throw new DicomError(`transfer syntax ${ts || '(none)'} is not supported; ${DICOM_CONVERSION}`);
}

/** The first value of a multi-valued decimal string, or undefined. */
function firstFloat(ds: DicomDataSet, tag: string): number | undefined {
  const v = ds.floatString(tag, 0);
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}

/**
 * dicom-parser's failure as a DicomError. It throws Errors, bare strings, and `{exception, dataSet}`
 * objects (a data set that broke off part way), which String() would print as "[object Object]".
 */
function unreadable(e: unknown): DicomError {
  const message = (x: unknown): string =>
    x instanceof Error
      ? x.message
      : typeof x === 'string'
        ? x
        : x && typeof x === 'object' && 'exception' in x
          ? message(x.exception)
          : String(x);
  return new DicomError(`not a readable DICOM file: ${message(e)}`);
}

/** Rows × Columns from the header alone (no pixel decoding), for the pixel cap before decoding. */
export function dicomSize(buf: Uint8Array): { width: number; height: number } {
  const parser = require('dicom-parser') as DicomParser;
  let ds: DicomDataSet;
  try {
    ds = parser.parseDicom(buf, { untilTag: 'x7fe00010' });
  } catch (e) {
    throw unreadable(e);
  }
  return { width: ds.uint16('x00280011') ?? 0, height: ds.uint16('x00280010') ?? 0 };
}

/** The header fields that say how frame 0 is stored, checked: one gray sample, 8 or 16 bits, a size within the cap. */
interface PixelFormat {
  ts: string;
  width: number;
  height: number;
  bitsAllocated: number;
  bitsStored: number;
  /** High Bit − Bits Stored + 1: how far the stored value sits above bit 0 of its cell. */
  shift: number;
  signed: boolean;
  photometric: string;
  el: DicomElement;
}

function pixelFormat(ds: DicomDataSet): PixelFormat {
  const ts = (ds.string('x00020010') ?? '').replace(/\0/g, '').trim();
  const height = ds.uint16('x00280010') ?? 0;
  const width = ds.uint16('x00280011') ?? 0;
  const samples = ds.uint16('x00280002') ?? 1;
  const bitsAllocated = ds.uint16('x00280100') ?? 16;
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  const photometric = (ds.string('x00280004') ?? 'MONOCHROME2').trim();
  const el = ds.elements.x7fe00010;
  if (!el) throw new DicomError('no Pixel Data element (7FE0,0010)');
  if (!width || !height) throw new DicomError(`Rows/Columns missing or zero (${height}×${width})`);
  if (width * height > DICOM_MAX_PIXELS)
    throw new DicomError(`${width}×${height} is above the ${DICOM_MAX_PIXELS}-pixel limit`);
  if (samples !== 1 || !photometric.startsWith('MONOCHROME'))
    throw new DicomError(`${photometric} with ${samples} samples per pixel is not a gray X-ray`);
  if (bitsAllocated !== 8 && bitsAllocated !== 16)
    throw new DicomError(`Bits Allocated ${bitsAllocated} is not supported (8 or 16)`);
  if (bitsStored < 1 || bitsStored > bitsAllocated)
    throw new DicomError(`Bits Stored ${bitsStored} does not fit Bits Allocated ${bitsAllocated}`);
  // the value's top bit; below Bits Stored − 1 or outside the cell no bits of it can be read
  const highBit = ds.uint16('x00280102') ?? bitsStored - 1;
  if (highBit < bitsStored - 1 || highBit >= bitsAllocated)
    throw new DicomError(
      `High Bit (0028,0102) ${highBit} is impossible with Bits Stored ${bitsStored} and Bits Allocated ${bitsAllocated} (it must be ${bitsStored - 1} to ${bitsAllocated - 1})`,
    );
  const shift = highBit - bitsStored + 1;
  return { ts, width, height, bitsAllocated, bitsStored, shift, signed, photometric, el };
}

/** The first item of the VOI LUT Sequence (0028,3010) as a function of the modality value, or null without one. */
function voiLut(ds: DicomDataSet, signed: boolean): ((x: number) => number) | null {
  const item = ds.elements['x00283010']?.items?.[0]?.dataSet;
  if (!item) return null;
  const d = item.elements['x00283002'];
  const data = item.elements['x00283006'];
  if (d?.length !== 6 || !data)
    throw new DicomError(
      'VOI LUT Sequence item without a 3-value LUT Descriptor (0028,3002) and LUT Data (0028,3006)',
    );
  const entries = item.uint16('x00283002', 0) || 65536; // 0 means 2^16
  const raw = item.uint16('x00283002', 1)!;
  const first = signed && raw >= 0x8000 ? raw - 0x10000 : raw;
  const bits = item.uint16('x00283002', 2)!;
  if (bits < 1 || bits > 16) throw new DicomError(`VOI LUT Descriptor: ${bits} bits per entry (1 to 16)`);
  if (data.length < entries * 2)
    throw new DicomError(`VOI LUT Data holds ${data.length} bytes, ${entries} 16-bit entries needed`);
  const table = new Float64Array(entries);
  const top = 2 ** bits - 1;
  for (let i = 0; i < entries; i++) table[i] = item.uint16('x00283006', i)! / top;
  return (x) => table[Math.min(entries - 1, Math.max(0, Math.round(x) - first))]!;
}

/**
 * Whether the display is inverted: Presentation LUT Shape (2050,0020) decides when it is IDENTITY or
 * INVERSE, whatever the photometric interpretation says (DCMTK does the same); without it MONOCHROME1
 * is inverted.
 */
function inverted(ds: DicomDataSet, photometric: string): boolean {
  const shape = (ds.string('x20500020') ?? '').trim().toUpperCase();
  if (shape === 'INVERSE') return true;
  if (shape === 'IDENTITY') return false;
  return photometric === 'MONOCHROME1';
}

/**
 * A stored cell's value as a code: shifted down to bit 0, masked to Bits Stored (sign bit kept in the
 * code), `(cell >> shift) & mask`. The addon applies it to every cell (dicomCodes, dicomApplyLut) on a
 * libuv pool thread: as JS loops the two passes held the event loop for tens of ms per 2500×3000 image.
 */
function codeMask(f: PixelFormat): number {
  return 2 ** f.bitsStored - 1;
}

/**
 * One table from every stored code (see codeMask; sign-extended when signed) to its grey
 * level: rescale, VOI and inversion are computed once per code, not once per pixel. The VOI is the first
 * window, else the first VOI LUT, else the codes present in `stored` scaled min–max.
 */
async function grayTable(
  ds: DicomDataSet,
  f: PixelFormat,
  stored: DicomCells,
): Promise<{ lut: Uint8Array; window: [number, number] | null }> {
  const slope = firstFloat(ds, 'x00281053') ?? 1;
  const intercept = firstFloat(ds, 'x00281052') ?? 0;
  const codes = 2 ** f.bitsStored;
  const modality = (code: number) =>
    (f.signed && code >= codes / 2 ? code - codes : code) * slope + intercept;
  const center = firstFloat(ds, 'x00281050');
  const widthW = firstFloat(ds, 'x00281051');
  const fn = (ds.string('x00281056') ?? 'LINEAR').trim().toUpperCase();
  const window: [number, number] | null =
    center !== undefined && widthW !== undefined && widthW >= 1 ? [center, widthW] : null;
  const lutVoi = window ? null : voiLut(ds, f.signed);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  if (!window && !lutVoi) {
    const seen = await loadNative().dicomCodes(stored, f.shift, codeMask(f));
    for (let code = 0; code < codes; code++) {
      if (!seen[code]) continue;
      const m = modality(code);
      if (m < lo) lo = m;
      if (m > hi) hi = m;
    }
  }
  const invert = inverted(ds, f.photometric);
  const lut = new Uint8Array(codes);
  for (let code = 0; code < codes; code++) {
    const x = modality(code);
    let y: number; // 0..1
    if (window) {
      const [c, w] = window;
      if (fn === 'SIGMOID') y = 1 / (1 + Math.exp((-4 * (x - c)) / w));
      else if (fn === 'LINEAR_EXACT') y = (x - (c - w / 2)) / w;
      else y = (x - (c - 0.5)) / (w - 1) + 0.5;
    } else if (lutVoi) y = lutVoi(x);
    else y = hi > lo ? (x - lo) / (hi - lo) : 0;
    y = y < 0 ? 0 : Math.min(y, 1);
    const g = Math.round(y * 255);
    lut[code] = invert ? 255 - g : g;
  }
  return { lut, window };
}

/**
 * Decodes frame 0 of a DICOM file into an 8-bit gray plane (see the file comment for the steps).
 * @throws {DicomError} not DICOM, not one gray sample per pixel, a size over DICOM_MAX_PIXELS, pixel
 *   data shorter than the header says, a compressed frame whose own header (JPEG SOF, JPEG 2000 SIZ) is
 *   not Rows × Columns (checked before decoding), or a transfer syntax without a codec here (naming the
 *   conversion).
 * The per-pixel passes read `buf` in place on a libuv pool thread: do not write, transfer or detach it
 * until the promise settles.
 */
export async function decodeDicom(buf: Uint8Array): Promise<DicomImage> {
  const parser = require('dicom-parser') as DicomParser;
  let ds: DicomDataSet;
  try {
    ds = parser.parseDicom(buf);
  } catch (e) {
    throw unreadable(e);
  }
  const f = pixelFormat(ds);
  const { ts, width, height, bitsStored, photometric } = f;
  const n = width * height;
  const stored = await storedValues(parser, ds, f.el, ts, width, height, f.bitsAllocated, f.signed);
  if (stored.length < n) throw new DicomError(`decoded ${stored.length} pixels, ${n} expected`);
  const cells = stored.length > n ? stored.subarray(0, n) : stored;
  const { lut, window } = await grayTable(ds, f, cells);
  const out = await loadNative().dicomApplyLut(cells, f.shift, codeMask(f), lut);
  const gray = new Uint8Array(out.buffer, out.byteOffset, out.length);
  return { width, height, gray, photometric, transferSyntax: ts, bitsStored, window };
}
