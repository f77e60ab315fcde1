/**
 * Test-time masks predicted by a segmenter (config.segmenter): the deployment case, where an image has
 * no CheXmask row. Once per run the segmenter reads the cache records (gray plane) of the validation
 * and test rows; its region bits become contour bits with the cache's own thickness (maskBoundary, as
 * the cache draws CheXmask's) and are stored as mask planes in `<runDir>/predicted-masks/`. A
 * 'masked-pred' batch is the cache's records with that plane in place of CheXmask's, painted as usual.
 */

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InterruptedError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { readBinaryFileSync, readJson, writeFileAtomic, writeJsonAtomic } from '../common/io.js';
import { prefetch } from '../common/prefetch.js';
import { FILL_SHIFT } from '../masks/overlay.js';
import type { ClipLike, SegmenterBackendLike } from '../model/backend.js';
import { isRecordBatch } from '../model/records.js';
import { contourFromRegionBits } from '../service/region-bits.js';
import type { Batch, CacheLike } from './backend.js';
import type { FeatureSet } from './features.js';

import { readableRows } from './unreadable.js';

export interface PredictedMasks {
  size: number;
  rows: number[];
  /** planes[j]: mask plane (contour bits 0-2, region bits 3-5) of cache row rows[j]. */
  planes: Uint8Array;
  slot: Map<number, number>;
  meta: PredictedMeta;
}

interface PredictedMeta {
  rows: number[];
  size: number;
  thickness: number;
  segmenter: { dir: string; weights: string; threshold: number };
  seconds: number;
}

/** The cache's mask plane for predicted region bits (1 right lung, 2 left lung, 4 heart) of one image. */
export function predictedPlane(bits: Uint8Array, size: number, thickness: number): Uint8Array {
  const out = contourFromRegionBits(bits, size, thickness);
  for (let p = 0; p < out.length; p++) out[p]! |= (bits[p]! & 7) << FILL_SHIFT;
  return out;
}

/** Loads `<dir>/planes.*` when it was made for the same rows and segmenter, else predicts and stores. */
export async function ensurePredictedMasks(
  load: () => Promise<SegmenterBackendLike>,
  cache: CacheLike,
  o: {
    dir: string;
    rows: number[];
    size: number;
    thickness: number;
    segmenter: PredictedMeta['segmenter'];
    batchSize: number;
    signal?: StopSignal;
  },
): Promise<PredictedMasks> {
  const hw = o.size * o.size;
  const metaPath = join(o.dir, 'planes.json');
  const binPath = join(o.dir, 'planes.u8');
  const slot = new Map(o.rows.map((r, j) => [r, j]));
  const have = readJson<PredictedMeta>(metaPath);
  const same = (m: PredictedMeta) =>
    JSON.stringify([m.rows, m.size, m.thickness, m.segmenter]) ===
    JSON.stringify([o.rows, o.size, o.thickness, o.segmenter]);
  // over 2 GiB at MIMIC scale (rows × size²): read by readBinaryFileSync, and only at the right size
  if (have && same(have) && existsSync(binPath) && statSync(binPath).size === o.rows.length * hw)
    return { size: o.size, rows: o.rows, planes: readBinaryFileSync(binPath), slot, meta: have };
  if (!cache.recordBatch) throw new Error('predicted masks need a cache with records (Cache.recordBatch)');
  const t0 = performance.now();
  const planes = new Uint8Array(o.rows.length * hw);
  const seg = await load();
  try {
    const batches = Math.ceil(o.rows.length / o.batchSize);
    const idxOf = (k: number) => o.rows.slice(k * o.batchSize, (k + 1) * o.batchSize);
    const read = (idx: number[]) => cache.recordBatch!(idx, ['original']);
    for await (const r of prefetch(batches, (k) => read(idxOf(k)))) {
      if (o.signal?.stop) throw new InterruptedError('interrupted while predicting masks');
      // an unreadable image gets no mask (all zero); its predictions fail later, one row at a time
      const part = r.ok ? { rows: idxOf(r.i), batch: r.value } : await readableRows(read, idxOf(r.i));
      if (!part.batch) continue;
      const bits = await seg.predictMasks(part.batch.x, part.rows.length);
      part.rows.forEach((row, j) => {
        planes.set(
          predictedPlane(bits.subarray(j * hw, (j + 1) * hw), o.size, o.thickness),
          (slot.get(row) as number) * hw,
        );
      });
    }
  } finally {
    await seg.dispose();
  }
  const meta: PredictedMeta = {
    rows: o.rows,
    size: o.size,
    thickness: o.thickness,
    segmenter: o.segmenter,
    seconds: (performance.now() - t0) / 1000,
  };
  writeFileAtomic(binPath, planes);
  writeJsonAtomic(metaPath, meta);
  return { size: o.size, rows: o.rows, planes, slot, meta };
}

/** Batches of cache rows masked with the predicted contours (records with the predicted plane). */
export function predictedSource(cache: CacheLike, pm: PredictedMasks): (idx: number[]) => Promise<Batch> {
  const hw = pm.size * pm.size;
  return async (idx) => {
    const b = await cache.recordBatch!(idx, ['masked']);
    if (!isRecordBatch(b.x)) throw new Error('predicted masks need record batches');
    const rec = b.x.records;
    idx.forEach((row, j) => {
      const k = pm.slot.get(row);
      if (k === undefined)
        throw new Error(`cache row ${row} has no predicted mask (validate/test rows only)`);
      rec.set(pm.planes.subarray(k * hw, (k + 1) * hw), j * 2 * hw + hw);
    });
    return b;
  };
}

/** Image-tower features of the predicted-mask images of `pm.rows` ([N,D], other rows NaN), cached on disk. */
export async function predictedFeatures(
  clip: () => Promise<ClipLike>,
  cache: CacheLike,
  pm: PredictedMasks,
  o: { dir: string; batchSize: number; bf16: boolean; signal?: StopSignal },
): Promise<FeatureSet> {
  const metaPath = join(o.dir, 'masked-pred.json');
  const binPath = join(o.dir, 'masked-pred.f32');
  const n = cache.entries.length;
  const have = readJson<Omit<FeatureSet, 'x'> & { rows: number }>(metaPath);
  if (
    have &&
    have.rows === pm.rows.length &&
    existsSync(binPath) &&
    statSync(binPath).size === have.n * have.dim * 4
  )
    return { ...have, x: new Float32Array(readBinaryFileSync(binPath).buffer) };
  const t0 = performance.now();
  const model = await clip();
  try {
    const d = model.embedDim;
    const x = new Float32Array(n * d).fill(Number.NaN);
    const source = predictedSource(cache, pm);
    const idxOf = (k: number) => pm.rows.slice(k * o.batchSize, (k + 1) * o.batchSize);
    const failed: number[] = [];
    for await (const r of prefetch(Math.ceil(pm.rows.length / o.batchSize), (k) => source(idxOf(k)))) {
      if (o.signal?.stop) throw new InterruptedError('interrupted while computing features');
      // unreadable images keep NaN features and are listed as failed (like computeFeatures)
      const part = r.ok
        ? { rows: idxOf(r.i), batch: r.value, failed: [] }
        : await readableRows(source, idxOf(r.i));
      for (const f of part.failed) failed.push(...f.rows);
      if (!part.batch) continue;
      const f = await model.encodeImage(part.batch.x, part.rows.length, { bf16: o.bf16 });
      part.rows.forEach((row, j) => {
        x.set(f.subarray(j * d, (j + 1) * d), row * d);
      });
    }
    const meta = {
      variant: 'masked' as const,
      n,
      dim: d,
      failed: failed.sort((a, b) => a - b),
      seconds: (performance.now() - t0) / 1000,
      rows: pm.rows.length,
    };
    writeFileAtomic(binPath, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    writeJsonAtomic(metaPath, meta);
    return { ...meta, x };
  } finally {
    model.dispose();
  }
}
