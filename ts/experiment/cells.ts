/**
 * The cells of the Table-2 grid: which ones a config asks for and which are on disk, the shape of their
 * results, and the data they read (split indices and labels, image or feature batches). grid.ts runs them.
 */

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { NUM_LABELS } from '../common/labels.js';
import { shuffled } from '../common/random.js';
import type { TrainedKind } from '../model/kinds.js';
import type { ZeroShotProtocol } from '../model/zeroshot.js';
import type { Batch, CacheLike } from './backend.js';
import type { ExperimentConfig, PREDICTED, Setup, Variant } from './config.js';
import { type FeatureSet, gatherRows } from './features.js';
import type { BatchSource, EpochRecord, Predictions } from './train.js';

export interface PredSet {
  /** probabilities [n, 5] (NaN rows = unreadable images) */
  probs: number[];
  failed: number[];
}

/** Predictions of one trained/zero-shot model: split → test variant → probabilities ('masked-pred' with config.segmenter). */
export type PredGrid = Record<
  'validate' | 'test',
  Record<Variant, PredSet> & Partial<Record<typeof PREDICTED, PredSet>>
>;

export interface CellResult {
  id: string;
  setup: Setup;
  trainVariant: Variant | 'none';
  seed: number | null;
  protocol?: ZeroShotProtocol;
  predictions: PredGrid;
  history?: EpochRecord[];
  bestEpoch?: number;
  seconds: number;
  device: string;
  finishedAt: string;
}

export interface ZeroShotResult {
  id: 'zeroshot';
  prompts: string[];
  negativePrompts: string[] | null;
  logitScale: number;
  protocols: Record<ZeroShotProtocol, PredGrid>;
  seconds: number;
  finishedAt: string;
}

export interface SplitData {
  train: number[];
  validate: number[];
  test: number[];
  labels: Float32Array; // [N, 5] for all cache rows
  labelMask: Float32Array;
}

export const cellId = (setup: TrainedKind, train: Variant, seed: number) =>
  `${setup === 'linear-probe' ? 'lp' : 'jft'}-${train}-s${seed}`;

/** The setup of a cell id ('zeroshot' or one cellId made): the one place a cell id is read. */
export function setupOfCell(id: string): Setup {
  if (id === 'zeroshot') return 'zeroshot';
  if (id.startsWith('lp-')) return 'linear-probe';
  if (id.startsWith('jft-')) return 'finetune';
  throw new Error(`"${id}" is not a cell id (zeroshot, lp-<variant>-s<seed> or jft-<variant>-s<seed>)`);
}

/** The trained cells of a config, in run order: setup, then seed, then training variant. */
export function trainedCells(
  config: ExperimentConfig,
): { setup: TrainedKind; train: Variant; seed: number }[] {
  const cells: { setup: TrainedKind; train: Variant; seed: number }[] = [];
  for (const setup of ['linear-probe', 'finetune'] as const) {
    const enabled = setup === 'linear-probe' ? config.linearProbe.enabled : config.finetune.enabled;
    if (!enabled) continue;
    for (const seed of config.seeds)
      for (const train of config.trainVariants) cells.push({ setup, train, seed });
  }
  return cells;
}

/** Cell ids the config asks for, in run order. */
export function plannedCells(config: ExperimentConfig): string[] {
  const ids = trainedCells(config).map((c) => cellId(c.setup, c.train, c.seed));
  return config.zeroshot.enabled ? ['zeroshot', ...ids] : ids;
}

/** Which planned cells already have results on disk. */
export function finishedCells(runDir: string): Set<string> {
  const out = new Set<string>();
  const cells = join(runDir, 'cells');
  if (!existsSync(cells)) return out;
  if (existsSync(join(cells, 'zeroshot.json'))) out.add('zeroshot');
  for (const d of readdirSync(cells)) if (existsSync(join(cells, d, 'result.json'))) out.add(d);
  return out;
}

/** Split indices and the label matrix of every cache row (from entries when they carry labels). */
export async function splitData(cache: CacheLike): Promise<SplitData> {
  const N = cache.entries.length;
  const labels = new Float32Array(N * NUM_LABELS);
  const labelMask = new Float32Array(N * NUM_LABELS);
  const missing: number[] = [];
  cache.entries.forEach((e, i) => {
    if (Array.isArray(e.labels) && e.labels.length === NUM_LABELS) {
      labels.set(e.labels, i * NUM_LABELS);
      labelMask.set(Array.isArray(e.labelMask) ? e.labelMask : new Array(NUM_LABELS).fill(1), i * NUM_LABELS);
    } else missing.push(i);
  });
  for (let s = 0; s < missing.length; s += 64) {
    const idx = missing.slice(s, s + 64);
    const b = await cache.batch(idx, 'original');
    idx.forEach((row, j) => {
      labels.set(b.labels.subarray(j * NUM_LABELS, (j + 1) * NUM_LABELS), row * NUM_LABELS);
      labelMask.set(b.labelMask.subarray(j * NUM_LABELS, (j + 1) * NUM_LABELS), row * NUM_LABELS);
    });
  }
  return {
    train: cache.indicesOf('train'),
    validate: cache.indicesOf('validate'),
    test: cache.indicesOf('test'),
    labels,
    labelMask,
  };
}

export function toPredSet(p: Predictions): PredSet {
  return { probs: Array.from(p.probs), failed: p.failed };
}

/** At most `max` training rows (null = all): the first N in a fixed order seeded by the cell's seed. */
export function limitTrain(train: number[], max: number | null, seed: number): number[] {
  if (max === null || train.length <= max) return train;
  return shuffled(train, 99_991 + seed).slice(0, max);
}

/** A batch source over cached features (linear probe). */
export function featureSource(f: FeatureSet, sd: SplitData): BatchSource {
  return async (idx) => {
    for (const i of idx) if (f.failed.includes(i)) throw new Error(`row ${i} has no features`);
    return {
      x: gatherRows(f.x, f.dim, idx),
      n: idx.length,
      labels: gatherRows(sd.labels, NUM_LABELS, idx),
      labelMask: gatherRows(sd.labelMask, NUM_LABELS, idx),
    };
  };
}

/** Images of one variant: cache records for the addon's uint8 path when the cache has them. */
export function imageSource(cache: CacheLike, variant: Variant): BatchSource {
  if (cache.recordBatch) return (idx) => cache.recordBatch!(idx, [variant]);
  return async (idx) => (await cache.batch(idx, variant)) as Batch;
}
