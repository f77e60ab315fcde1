/**
 * Image features (frozen image tower) computed once per variant and cached on disk as raw float32
 * `<dir>/<variant>.f32` ([N, D], rows = cache entry order) + `<variant>.json` metadata. Rows that could
 * not be encoded (unreadable image) are NaN and listed in `failed`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CacheLike, ClipLike } from './backend.js';
import type { Variant } from './config.js';
import { readJson, writeFileAtomic, writeJsonAtomic } from './io.js';
import { InterruptedError, type StopSignal } from './train.js';

export interface FeatureMeta {
  variant: Variant;
  n: number;
  dim: number;
  failed: number[];
  seconds: number;
}

export interface FeatureSet extends FeatureMeta {
  x: Float32Array;
}

export function loadFeatures(dir: string, variant: Variant): FeatureSet | null {
  const meta = readJson<FeatureMeta>(join(dir, `${variant}.json`));
  const bin = join(dir, `${variant}.f32`);
  if (!meta || !existsSync(bin)) return null;
  const buf = readFileSync(bin);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  if (x.length !== meta.n * meta.dim) return null;
  return { ...meta, x: new Float32Array(x) };
}

export async function computeFeatures(
  clip: ClipLike,
  cache: CacheLike,
  variant: Variant,
  dir: string,
  {
    batchSize = 64,
    bf16 = false,
    signal,
    onProgress,
  }: {
    batchSize?: number;
    bf16?: boolean;
    signal?: StopSignal;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<FeatureSet> {
  const cached = loadFeatures(dir, variant);
  if (cached) return cached;
  const t0 = performance.now();
  const n = cache.entries.length;
  const d = clip.embedDim;
  const x = new Float32Array(n * d).fill(Number.NaN);
  const failed: number[] = [];
  const encode = async (idx: number[]) => {
    const b = await cache.batch(idx, variant);
    const f = await clip.encodeImage(b.x, b.n, { bf16 });
    for (let j = 0; j < idx.length; j++) x.set(f.subarray(j * d, (j + 1) * d), idx[j]! * d);
  };
  for (let s = 0; s < n; s += batchSize) {
    if (signal?.stop) throw new InterruptedError('interrupted while computing features');
    const idx = Array.from({ length: Math.min(batchSize, n - s) }, (_, j) => s + j);
    try {
      await encode(idx);
    } catch {
      for (const i of idx) {
        try {
          await encode([i]);
        } catch {
          failed.push(i);
        }
      }
    }
    onProgress?.(Math.min(s + batchSize, n), n);
  }
  const meta: FeatureMeta = { variant, n, dim: d, failed, seconds: (performance.now() - t0) / 1000 };
  writeFileAtomic(join(dir, `${variant}.f32`), new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  writeJsonAtomic(join(dir, `${variant}.json`), meta);
  return { ...meta, x };
}

/** Rows `indices` of a feature matrix as one contiguous array. */
export function gatherRows(x: Float32Array, dim: number, indices: number[]): Float32Array {
  const out = new Float32Array(indices.length * dim);
  for (let j = 0; j < indices.length; j++)
    out.set(x.subarray(indices[j]! * dim, (indices[j]! + 1) * dim), j * dim);
  return out;
}
