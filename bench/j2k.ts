/**
 * JPEG 2000 codestreams for DICOM fixtures (VinDr-CXR ships some DICOMs so), made by the codec the reader
 * decodes them with (@cornerstonejs/codec-openjpeg), lossless. Used by bench/formats.ts and the DICOM tests.
 */
import { createRequire } from 'node:module';

/**
 * The lossless J2K codestream of `values` (w×h unsigned gray, `bits` per sample), for writeDicom's `frame`.
 * `decompositions` is the wavelet levels (the codec's default when not given).
 */
export async function encodeJ2k(
  values: ArrayLike<number>,
  w: number,
  h: number,
  o: { bits?: number; decompositions?: number } = {},
): Promise<Uint8Array> {
  const require = createRequire(import.meta.url);
  // biome-ignore lint/suspicious/noExplicitAny: the codec ships no types
  const m = await (require('@cornerstonejs/codec-openjpeg/wasmjs') as (o: unknown) => Promise<any>)({
    print: () => {},
    printErr: () => {},
  });
  const enc = new m.J2KEncoder();
  try {
    const into = enc.getDecodedBuffer({
      width: w,
      height: h,
      bitsPerSample: o.bits ?? 12,
      componentCount: 1,
      isSigned: false,
    });
    new Uint16Array(into.buffer, into.byteOffset, w * h).set(values);
    enc.setQuality(true, 0);
    if (o.decompositions !== undefined) enc.setDecompositions(o.decompositions);
    enc.encode();
    return Uint8Array.from(enc.getEncodedBuffer());
  } finally {
    enc.delete?.();
  }
}
