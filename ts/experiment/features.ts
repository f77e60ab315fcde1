/**
 * Image features (frozen image tower) computed once for both variants and cached on disk as raw float32
 * `<dir>/<variant>.f32` ([N, D], rows = cache entry order) + `<variant>.json` metadata. Rows that could
 * not be encoded (unreadable image) are NaN and listed in `failed`.
 */

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InterruptedError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { readBinaryFileSync, readJson, writeFileAtomic, writeJsonAtomic } from '../common/io.js';
import { DataWait, prefetch } from '../common/prefetch.js';
import type { ClipLike } from '../model/backend.js';
import type { Batch, CacheLike } from './backend.js';
import type { Variant } from './config.js';

export interface FeatureMeta {
  variant: Variant;
  n: number;
  dim: number;
  failed: number[];
  seconds: number;
  /** Time the loop waited for records not yet read (the rest is model time). */
  dataWaitSeconds?: number;
}

export interface FeatureSet extends FeatureMeta {
  x: Float32Array;
}

export function loadFeatures(dir: string, variant: Variant): FeatureSet | null {
  const meta = readJson<FeatureMeta>(join(dir, `${variant}.json`));
  const bin = join(dir, `${variant}.f32`);
  // 2 GB at 243k rows × 1024-d: readFileSync refuses a file over 2 GiB, and the size is checked unread
  if (!meta || !existsSync(bin) || statSync(bin).size !== meta.n * meta.dim * 4) return null;
  return { ...meta, x: new Float32Array(readBinaryFileSync(bin).buffer) };
}

/**
 * Features of every cache row for `variants`: those on disk are loaded, the rest computed in one pass.
 * With a record-reading cache each record is read once and the model embeds every missing variant
 * from it; `batchSize` counts rows per model call either way. Batch k+1 is read while batch k is
 * embedded. `clip` may be null only when every variant is on disk.
 */
export async function computeFeatures(
  clip: ClipLike | null,
  cache: CacheLike,
  variants: readonly Variant[],
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
): Promise<Map<Variant, FeatureSet>> {
  const out = new Map<Variant, FeatureSet>();
  for (const v of variants) {
    const cached = loadFeatures(dir, v);
    if (cached) out.set(v, cached);
  }
  const todo = variants.filter((v) => !out.has(v));
  if (!todo.length) return out;
  if (!clip) throw new Error(`features ${todo.join(', ')} are not in ${dir} and no model was given`);
  const model = clip;
  // Records give every missing variant per image in one call: fewer images keep the rows at batchSize.
  const images = cache.recordBatch ? Math.max(1, Math.floor(batchSize / todo.length)) : batchSize;
  const t0 = performance.now();
  const n = cache.entries.length;
  const d = model.embedDim;
  const xs = todo.map(() => new Float32Array(n * d).fill(Number.NaN));
  const failed: number[] = [];
  const wait = new DataWait();
  // One batch holding every variant still to do: records when the cache has them, else floats per variant.
  const load = async (idx: number[]): Promise<{ x: Batch['x']; n: number }[]> => {
    if (cache.recordBatch) {
      const b = await cache.recordBatch(idx, todo);
      return [{ x: b.x, n: b.n }];
    }
    return Promise.all(todo.map(async (v) => ({ x: (await cache.batch(idx, v)).x, n: idx.length })));
  };
  const encode = async (idx: number[], parts: { x: Batch['x']; n: number }[]) => {
    const rows = idx.length;
    const fs = await Promise.all(parts.map((p) => model.encodeImage(p.x, p.n, { bf16 })));
    // Records: one result of todo.length·rows rows; floats: one result per variant.
    const all = fs.length === 1 ? fs[0]! : concat(fs);
    todo.forEach((_, t) => {
      for (let j = 0; j < rows; j++)
        xs[t]!.set(all.subarray((t * rows + j) * d, (t * rows + j + 1) * d), idx[j]! * d);
    });
  };
  const batchOf = (k: number) =>
    Array.from({ length: Math.min(images, n - k * images) }, (_, j) => k * images + j);
  const batches = prefetch(Math.ceil(n / images), (k) => load(batchOf(k)), { wait });
  for await (const item of batches) {
    if (signal?.stop) throw new InterruptedError('interrupted while computing features');
    const idx = batchOf(item.i);
    try {
      if (!item.ok) throw item.error;
      await encode(idx, item.value);
    } catch {
      for (const i of idx) {
        try {
          await encode([i], await load([i]));
        } catch {
          failed.push(i);
        }
      }
    }
    onProgress?.(Math.min((item.i + 1) * images, n), n);
  }
  const seconds = (performance.now() - t0) / 1000;
  todo.forEach((v, t) => {
    const meta: FeatureMeta = { variant: v, n, dim: d, failed, seconds, dataWaitSeconds: wait.seconds };
    out.set(v, saveFeatures(dir, meta, xs[t]!));
  });
  return out;
}

/** `<dir>/<variant>.f32` and `.json`, each written atomically. */
function saveFeatures(dir: string, meta: FeatureMeta, x: Float32Array): FeatureSet {
  writeFileAtomic(join(dir, `${meta.variant}.f32`), new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  writeJsonAtomic(join(dir, `${meta.variant}.json`), meta);
  return { ...meta, x };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Rows `indices` of a feature matrix as one contiguous array. */
export function gatherRows(x: Float32Array, dim: number, indices: number[]): Float32Array {
  const out = new Float32Array(indices.length * dim);
  for (let j = 0; j < indices.length; j++)
    out.set(x.subarray(indices[j]! * dim, (indices[j]! + 1) * dim), j * dim);
  return out;
}
