/**
 * Op inputs are taken when the call is made. Model ops run one at a time per model (serial.ts), so an
 * op may start well after its call returned; everything it reads is taken here, synchronously, at the
 * call: typed arrays are copied (on the JS thread; into page-locked memory when a GPU is present), the
 * pixel spec is read, and views of `hostBytes` memory are borrowed by reference instead of copied.
 * So reusing, overwriting or transferring an input right after the call returned does not change what
 * the op computes — except writing into `hostBytes` memory before the op's promise has settled: the
 * op reads that memory in place (this is what makes cache records zero-copy), so what it sees of such
 * a write is undefined. Dropping or transferring a `hostBytes` buffer is always safe: the op holds its
 * own reference, and it settles only after the device has read the memory.
 */
import { loadNative, type NativeHeld, type NativePixels } from '../native.js';

/** An image-op input (float32 images or features, or uint8 cache records with their pixel spec). */
export function holdImages(x: Float32Array | Uint8Array, shape: number[], pixels?: NativePixels): NativeHeld {
  return loadNative().holdImages(x, shape, pixels);
}

/** Any other array input (labels, masks, token ids, region bits, baselines, prompt embeddings). */
export function holdArray(
  x: Float32Array | Uint8Array | BigInt64Array | NativeHeld,
  name: string,
): NativeHeld {
  return ArrayBuffer.isView(x) ? loadNative().holdArray(x, name) : x;
}
