/**
 * Cache records as model input. A record is what the image cache stores for one image: the S×S uint8
 * gray plane, then the S×S contour bit map (1 right lung, 2 left lung, 4 heart). The addon turns
 * records into normalised RGB where the model runs (Eq. 1 paint, then mean/std), so the host hands
 * over 2·S² bytes per image instead of 12·S² (float32 RGB) and does no per-pixel work.
 */
import { checkArg, deviceName, nonNegativeInt, positiveInt, typeName } from '../common/options.js';
import { loadNative } from '../native.js';
import { withJsStack } from './js-stack.js';

/** How records become images: the preset's mean/std, the paint table, and which variants to emit. */
export interface PixelSpec {
  mean: [number, number, number];
  std: [number, number, number];
  /** paint[b*3+c]: what contour bits b add to channel c (α·colour summed over the regions in b). */
  paint: Float32Array;
  /** Emit the unpainted image. */
  original: boolean;
  /** Emit the painted image (after the original ones when both are set). */
  masked: boolean;
}

/** Cache records as model input: n records of `2·size²` bytes and how to turn them into images. */
export interface RecordBatch {
  kind: 'records';
  /** n records of 2·size² bytes each. */
  records: Uint8Array;
  size: number;
  pixels: PixelSpec;
}

/** A model op's image input: normalised float32 [n,3,S,S], or cache records. */
export type ImageInput = Float32Array | RecordBatch;

export function isRecordBatch(x: unknown): x is RecordBatch {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'records';
}

/** Rows a batch yields per input image: 2 when records ask for both variants. */
export function variantsOf(x: ImageInput): number {
  return isRecordBatch(x) ? Number(x.pixels.original) + Number(x.pixels.masked) : 1;
}

/**
 * Checks a record batch of n images for a model of image size `size`; returns the native shape.
 * @throws {TypeError} `records` is not a Uint8Array, `pixels` is not an object, mean/std are not 3
 *   finite numbers, or `paint` is not a Float32Array(24).
 * @throws {RangeError} `size` differs from the model's, `records` is not n·2·size² bytes, a std ≤ 0,
 *   a non-finite paint value, or neither `original` nor `masked` is set.
 */
export function checkRecords(x: RecordBatch, n: number, size: number, name = 'x'): number[] {
  if (!(x.records instanceof Uint8Array))
    throw new TypeError(`${name}.records must be a Uint8Array, got ${typeName(x.records)}`);
  if (x.size !== size) throw new RangeError(`${name}.size is ${x.size}, the model takes ${size}`);
  const want = n * 2 * size * size;
  if (x.records.length !== want)
    throw new RangeError(
      `${name}.records must hold ${want} bytes (${n} records of 2·${size}²), got ${x.records.length}`,
    );
  const p = x.pixels;
  if (typeof p !== 'object' || p === null) throw new TypeError(`${name}.pixels must be an object`);
  for (const k of ['mean', 'std'] as const) {
    const v = p[k];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((e) => Number.isFinite(e)))
      throw new TypeError(`${name}.pixels.${k} must be 3 finite numbers`);
  }
  if (!p.std.every((e) => e > 0)) throw new RangeError(`${name}.pixels.std must be > 0`);
  if (!(p.paint instanceof Float32Array) || p.paint.length !== 24)
    throw new TypeError(`${name}.pixels.paint must be a Float32Array(24) (see paintTable)`);
  if (!p.paint.every((e) => Number.isFinite(e))) throw new RangeError(`${name}.pixels.paint must be finite`);
  for (const k of ['original', 'masked'] as const)
    if (typeof p[k] !== 'boolean') throw new TypeError(`${name}.pixels.${k} must be a boolean`);
  if (!p.original && !p.masked) throw new RangeError(`${name}.pixels: neither original nor masked is set`);
  return [n, 2, size, size];
}

/**
 * The addon's record → image conversion alone: normalised float32 [rows,3,S,S] (originals first, then
 * masked), computed on `device` and returned on the host. Model ops do the same internally; this is for
 * figures, checks and benchmarks.
 * @throws {TypeError|RangeError} (synchronously) a bad batch (checkRecords), `n` or `device`.
 * @throws {Error} (synchronously) the addon cannot be loaded (loadNative).
 * @throws {NativeError} (rejects) the native conversion fails.
 */
export function recordsToImages(
  x: RecordBatch,
  n: number,
  options: { device?: string } = {},
): Promise<Float32Array> {
  checkArg(positiveInt, n, 'n');
  const shape = checkRecords(x, n, x.size);
  const dev = checkArg(deviceName, options.device ?? 'cpu', 'device');
  const stack = new Error('recordsToImages');
  return withJsStack(
    loadNative().recordsToImages(x.records, shape, x.pixels, dev === 'auto' ? 'cpu' : dev),
    stack,
  );
}

/**
 * `bytes` of addon-owned host memory (page-locked when a GPU is present) as a Uint8Array. Model ops
 * borrow views of it instead of copying them, so reading cache records straight into it makes the
 * host side of a batch one positional read per record. Do not write into it until the promise of an op
 * that was given it has settled (the op reads it in place; ts/model/hold.ts); dropping or transferring
 * it is safe.
 * @throws {RangeError} `bytes` is not a non-negative integer, or is over 1e12 (checked by the addon).
 * @throws {Error} the addon cannot be loaded (loadNative).
 */
export function hostBytes(bytes: number): Uint8Array {
  checkArg(nonNegativeInt, bytes, 'bytes');
  return new Uint8Array(loadNative().allocHostBuffer(bytes));
}
