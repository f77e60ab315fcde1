/**
 * What an image input must be before a decoder sees it, and the one function that reads image files.
 * A path must name a regular file (symlinks followed; devices, FIFOs, sockets and folders are refused
 * without reading) of at most `maxFileBytes`; its first bytes must be one of the accepted formats, so
 * that librsvg, libtiff and the other loaders sharp links never parse an untrusted body; and its
 * header must declare at most `maxPixels` pixels, checked before anything is decoded (a 1 MB
 * progressive JPEG can declare 16383×16383 and take ~800 MB to decode). The defaults live here.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import sharp, { type Metadata } from 'sharp';
import { z } from 'zod';
import { DataError } from '../common/errors.js';
import { checkRegularFile, statRegularFile } from '../common/files.js';
import { parseOptions } from '../common/options.js';
import { dicomSize } from './dicom.js';

/** Leading bytes of each format cxrmask may hand to a decoder. */
export const IMAGE_SIGNATURES = {
  jpeg: { offset: 0, bytes: [0xff, 0xd8, 0xff] },
  png: { offset: 0, bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  /** `DICM` after the 128-byte preamble (Part 10 files). */
  dicom: { offset: 128, bytes: [0x44, 0x49, 0x43, 0x4d] },
} as const satisfies Record<string, { offset: number; bytes: readonly number[] }>;
export type ImageFormat = keyof typeof IMAGE_SIGNATURES;

/** Formats accepted from callers and clients (serve, predict, explain, MaskingPredictor). */
export const INPUT_FORMATS: readonly ImageFormat[] = ['jpeg', 'png'];
/** Formats accepted for dataset files (cache build, figures of dataset images): VinDr-CXR is DICOM. */
export const DATASET_FORMATS: readonly ImageFormat[] = ['jpeg', 'png', 'dicom'];

/**
 * Real chest X-rays are at most ~3,000×3,500 px (~10 MP) and a few MB; the caps sit well above that
 * and well below what would exhaust a server's memory.
 */
export const DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024;
/** The default `maxPixels`: an image whose header declares more is refused before decoding (50 MP). */
export const DEFAULT_MAX_PIXELS = 50_000_000;

const FORMAT_NAMES = Object.keys(IMAGE_SIGNATURES) as [ImageFormat, ...ImageFormat[]];
export const ImageLimitsSchema = z
  .object({
    /** Largest image file (or bytes given as a Buffer / Uint8Array). */
    maxFileBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(DEFAULT_MAX_FILE_BYTES),
    /** Largest width × height the header may declare. */
    maxPixels: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(DEFAULT_MAX_PIXELS),
    /** Formats recognised by their leading bytes; anything else is refused before decoding. */
    formats: z
      .array(z.enum(FORMAT_NAMES))
      .min(1)
      .default([...INPUT_FORMATS]),
  })
  .strict();
/**
 * An encoded image (JPEG, PNG or DICOM) given to cxrmask: its file path, or its bytes as a Buffer or
 * any Uint8Array (what `fetch`'s `arrayBuffer()` and Web streams give). Decoders read the bytes
 * without a copy; `MaskingPredictor.predict`, whose decoding may start later, copies them at the call.
 */
export type EncodedImage = string | Uint8Array;

/** Caps on an input image: file bytes, pixels, and the formats accepted. */
export type ImageLimits = z.input<typeof ImageLimitsSchema>;
export type ResolvedImageLimits = z.output<typeof ImageLimitsSchema>;

export function resolveImageLimits(limits: ImageLimits = {}): ResolvedImageLimits {
  return parseOptions(ImageLimitsSchema, limits, 'image limits');
}

/** The format whose signature `buf` starts with, among `formats`; null when none matches. */
export function sniffFormat(
  buf: Uint8Array,
  formats: readonly ImageFormat[] = INPUT_FORMATS,
): ImageFormat | null {
  for (const f of formats) {
    const { offset, bytes } = IMAGE_SIGNATURES[f];
    if (buf.length < offset + bytes.length) continue;
    if (bytes.every((b, i) => buf[offset + i] === b)) return f;
  }
  return null;
}

const tooManyBytes = (file: string, size: number, max: number) =>
  new DataError('image-too-large', `image file is ${size} bytes, over the limit of ${max} (maxFileBytes)`, {
    file,
  });

/**
 * Reads one image file whole, after checking that it is a regular file of at most `maxFileBytes`.
 * The path is stat'ed first (a device is never opened), then opened non-blocking (a FIFO swapped in
 * meanwhile cannot hang the call) and the open descriptor checked again; at most the size seen then
 * is read, so a file growing while it is read cannot grow the buffer.
 */
export async function readImageFile(file: string, maxFileBytes = DEFAULT_MAX_FILE_BYTES): Promise<Buffer> {
  const missing = (e: unknown) =>
    new DataError(
      'image-missing',
      `cannot read image: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { file },
    );
  const reasons = { missing: 'image-missing', notFile: 'image-not-file', what: 'image' };
  const st0 = await statRegularFile(file, reasons);
  if (st0.size > maxFileBytes) throw tooManyBytes(file, st0.size, maxFileBytes);
  const fh = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)).catch((e) => {
    throw missing(e);
  });
  try {
    const st = await fh.stat();
    checkRegularFile(st, file, reasons.notFile);
    if (st.size > maxFileBytes) throw tooManyBytes(file, st.size, maxFileBytes);
    const buf = Buffer.allocUnsafe(st.size);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return n === buf.length ? buf : buf.subarray(0, n);
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw missing(e);
  } finally {
    await fh.close();
  }
}

/** An image input that passed every check: its bytes, a name for messages, and its header's size. */
export interface CheckedImage {
  buf: Buffer;
  /** The path, or `<buffer>`. */
  name: string;
  format: ImageFormat;
  width: number;
  height: number;
  /** sharp's header of a JPEG/PNG (absent for DICOM), for imageSource to reuse instead of parsing again. */
  header?: Metadata;
}

/**
 * The bytes of `input` (read with readImageFile when it is a path) once they are known to be one of
 * `limits.formats` with a header of at most `limits.maxPixels` pixels. Only the header is parsed.
 * @throws {DataError} `image-missing`, `image-not-file`, `image-too-large` (bytes or pixels) or
 *   `image-corrupt` (unknown format, unreadable header), naming the file.
 */
export async function checkedImage(input: EncodedImage, limits: ResolvedImageLimits): Promise<CheckedImage> {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) {
    throw new TypeError(
      `an image must be a file path, a Buffer or a Uint8Array, got ${input === null ? 'null' : typeof input}`,
    );
  }
  const name = typeof input === 'string' ? input : '<buffer>';
  let buf: Buffer;
  if (typeof input === 'string') buf = await readImageFile(input, limits.maxFileBytes);
  else {
    if (input.length > limits.maxFileBytes) throw tooManyBytes(name, input.length, limits.maxFileBytes);
    // a plain Uint8Array (fetch's arrayBuffer(), Web streams) is viewed as a Buffer, not copied: the
    // decoders read it with Buffer methods
    buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }
  const format = sniffFormat(buf, limits.formats);
  if (!format) {
    throw new DataError(
      'image-corrupt',
      `not a ${limits.formats.map((f) => f.toUpperCase()).join(' or ')} file (its first bytes are ${hexHead(buf)})`,
      { file: name },
    );
  }
  let width: number | undefined;
  let height: number | undefined;
  let header: Metadata | undefined;
  try {
    if (format === 'dicom') ({ width, height } = dicomSize(buf));
    else {
      header = await sharp(buf, { limitInputPixels: false }).metadata();
      ({ width, height } = header);
    }
  } catch (e) {
    throw new DataError(
      'image-corrupt',
      `cannot read the image header: ${(e as Error).message.split('\n')[0]}`,
      {
        file: name,
      },
    );
  }
  if (!width || !height) throw new DataError('image-corrupt', 'image header has no size', { file: name });
  if (width * height > limits.maxPixels) {
    throw new DataError(
      'image-too-large',
      `image is ${width}×${height} (${width * height} pixels), over the limit of ${limits.maxPixels} (maxPixels)`,
      { file: name },
    );
  }
  return { buf, name, format, width, height, ...(header ? { header } : {}) };
}

function hexHead(buf: Uint8Array): string {
  if (buf.length === 0) return 'none: the file is empty';
  return Array.from(buf.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * Size and transparency of an image file from its header alone, without the byte and pixel caps'
 * full read (DICOM: its first 256 KiB, which hold the header before the pixel data).
 * @throws the file cannot be opened, or its header read.
 */
export async function readImageHeader(
  file: string,
): Promise<{ width: number; height: number; hasAlpha: boolean }> {
  const fh = await open(file, 'r');
  try {
    const { offset, bytes } = IMAGE_SIGNATURES.dicom;
    const sig = Buffer.alloc(offset + bytes.length);
    const { bytesRead } = await fh.read(sig, 0, sig.length, 0);
    if (sniffFormat(sig.subarray(0, bytesRead), ['dicom'])) {
      const head = Buffer.alloc(256 * 1024);
      const got = await fh.read(head, 0, head.length, 0);
      return { ...dicomSize(head.subarray(0, got.bytesRead)), hasAlpha: false };
    }
  } finally {
    await fh.close();
  }
  const m = await sharp(file).metadata();
  return { width: m.width ?? 0, height: m.height ?? 0, hasAlpha: m.hasAlpha ?? false };
}
