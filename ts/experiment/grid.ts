/**
 * The Table-2 grid. Units of work ("cells"), each resumable with its outputs on disk:
 *   features/<variant>            image-tower features, once per variant (shared by zero-shot and LP)
 *   cells/zeroshot.json           zero-shot predictions (both protocols), val + test, both variants
 *   cells/<setup>-<train>-s<seed>/  LP or JFT trained on `train` ∈ {original, masked} with one seed:
 *       state.json + epoch-<e>.ckpt + best.ckpt while training, result.json when finished
 *       (validation + test predictions on original and masked images of the best epoch).
 * `--resume` skips finished cells, resumes an unfinished one from its last epoch checkpoint, then
 * re-aggregates (evaluate.ts) into results.json and the reports.
 */

import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { StopSignal } from '../common/interrupt.js';
import { readJson, writeJsonAtomic } from '../common/io.js';
import { NUM_LABELS } from '../common/labels.js';
import { shuffled } from '../common/random.js';
import { type GroupLike, ROOT_WORK_TIMEOUT_MS } from '../model/process-group.js';
import type { Backend, Batch, CacheLike, ClassifierLike, Split } from './backend.js';
import { checkCellConfigs, recordCell } from './cell-config.js';
import { type ExperimentConfig, PREDICTED, type Setup, VARIANTS, type Variant } from './config.js';
import { computeFeatures, type FeatureSet, gatherRows } from './features.js';
import {
  ensurePredictedMasks,
  type PredictedMasks,
  predictedFeatures,
  predictedSource,
} from './predicted-masks.js';
import { checkCellResult, checkZeroShotResult } from './stored-predictions.js';
import {
  type BatchSource,
  type EpochRecord,
  type Predictions,
  predictAllSharded,
  type TrainProgress,
  trainWithCheckpoints,
} from './train.js';
import { encodePrompts, type ZeroShotProtocol, ZS_PROTOCOLS, zeroShotScores } from '../model/zeroshot.js';

export type TrainedSetup = Exclude<Setup, 'zeroshot'>;

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

export type GridEvent =
  | { kind: 'phase'; name: string; detail?: string }
  | { kind: 'features'; variant: string; done: number; total: number }
  | { kind: 'cell-start'; id: string; epochs: number; resumedFrom: number }
  | { kind: 'cell-progress'; id: string; progress: TrainProgress }
  | { kind: 'cell-epoch'; id: string; record: EpochRecord }
  | { kind: 'cell-done'; id: string; skipped: boolean; seconds: number };

export interface SplitData {
  train: number[];
  validate: number[];
  test: number[];
  labels: Float32Array; // [N, 5] for all cache rows
  labelMask: Float32Array;
}

export interface GridContext {
  config: ExperimentConfig;
  backend: Backend;
  runDir: string;
  cache: CacheLike;
  signal?: StopSignal;
  onEvent?: (e: GridEvent) => void;
  /** Data-parallel cells (ts/distributed): every rank runs the grid; rank 0 alone writes files. */
  dist?: GroupLike;
  /** This process's device when a launcher chose it (e.g. cuda:LOCAL_RANK); default config.model.device. */
  device?: string;
}

export const cellId = (setup: TrainedSetup, train: Variant, seed: number) =>
  `${setup === 'linear-probe' ? 'lp' : 'jft'}-${train}-s${seed}`;

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

function rowsOf(a: Float32Array, idx: number[], k = NUM_LABELS): Float32Array {
  return gatherRows(a, k, idx);
}

export function toPredSet(p: Predictions): PredSet {
  return { probs: Array.from(p.probs), failed: p.failed };
}

function limitTrain(train: number[], max: number | null, seed: number): number[] {
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
      labels: rowsOf(sd.labels, idx),
      labelMask: rowsOf(sd.labelMask, idx),
    };
  };
}

/** Images of one variant: cache records for the addon's uint8 path when the cache has them. */
export function imageSource(cache: CacheLike, variant: Variant): BatchSource {
  if (cache.recordBatch) return (idx) => cache.recordBatch!(idx, [variant]);
  return async (idx) => (await cache.batch(idx, variant)) as Batch;
}

export class Grid {
  readonly sd: Promise<SplitData>;
  private features = new Map<Variant, FeatureSet>();
  private predicted: Promise<PredictedMasks> | null = null;
  private predFeatures: Promise<FeatureSet> | null = null;
  readonly device: string;

  constructor(readonly ctx: GridContext) {
    this.sd = splitData(ctx.cache);
    this.device = ctx.device ?? ctx.backend.resolveDevice(ctx.config.model.device);
    mkdirSync(join(ctx.runDir, 'cells'), { recursive: true });
  }

  private emit(e: GridEvent) {
    this.ctx.onEvent?.(e);
  }

  get bf16(): boolean {
    const b = this.ctx.config.finetune.bf16;
    return b === 'auto' ? this.device.startsWith('cuda') : b;
  }

  /** Data parallel: rank 0 runs `fn` (which writes files) while the others wait; then they run it. */
  private async rootFirst<T>(fn: () => Promise<T>): Promise<T> {
    const d = this.ctx.dist;
    if (!d || d.worldSize === 1) return fn();
    if (d.rank === 0) {
      const r = await fn();
      await d.barrier();
      return r;
    }
    await d.barrier(ROOT_WORK_TIMEOUT_MS);
    return fn();
  }

  /** Features of every cache row for both variants (loads the CLIP model only if something is missing). */
  async ensureFeatures(): Promise<void> {
    if (VARIANTS.every((v) => this.features.has(v))) return;
    // data parallel: rank 0 computes and writes the feature files, the others then read them
    return this.rootFirst(() => this.ensureFeaturesHere());
  }

  private async ensureFeaturesHere(): Promise<void> {
    const { config, backend, cache, runDir } = this.ctx;
    const dir = join(runDir, 'features');
    if (VARIANTS.every((v) => this.features.has(v))) return;
    // computeFeatures loads what is on disk and computes the rest in one pass over the records.
    const onDisk = (v: Variant) => existsSync(join(dir, `${v}.json`)) && existsSync(join(dir, `${v}.f32`));
    const missing = VARIANTS.filter((v) => !onDisk(v));
    const clip = missing.length ? await backend.loadClip(config.model.dir, this.device) : null;
    try {
      if (missing.length) this.emit({ kind: 'phase', name: 'features', detail: missing.join('+') });
      const sets = await computeFeatures(clip, cache, VARIANTS, dir, {
        batchSize: config.zeroshot.batchSize,
        bf16: this.bf16,
        signal: this.ctx.signal,
        onProgress: (done, total) => this.emit({ kind: 'features', variant: missing.join('+'), done, total }),
      });
      for (const [v, f] of sets) this.features.set(v, f);
    } finally {
      clip?.dispose();
    }
  }

  /** Masks predicted by config.segmenter for the validation and test rows (once per run, on disk); null without one. */
  ensurePredicted(): Promise<PredictedMasks> | null {
    const { config, backend, cache, runDir } = this.ctx;
    const sc = config.segmenter;
    if (!sc) return null;
    this.predicted ??= (async () => {
      const sd = await this.sd;
      const { loadSegmenter } = backend;
      if (!loadSegmenter) throw new Error(`backend ${backend.name} cannot load a segmenter`);
      const c = cache as CacheLike & { size?: number; contour?: { thickness: number } };
      this.emit({ kind: 'phase', name: 'predicted masks', detail: sc.dir });
      return ensurePredictedMasks(
        () => loadSegmenter(sc.dir, sc.weights, { device: this.device, threshold: sc.threshold }),
        cache,
        {
          dir: join(runDir, 'predicted-masks'),
          rows: [...sd.validate, ...sd.test],
          size: c.size ?? 224,
          thickness: c.contour?.thickness ?? 2,
          segmenter: { dir: sc.dir, weights: sc.weights, threshold: sc.threshold },
          batchSize: config.zeroshot.batchSize,
          signal: this.ctx.signal,
        },
      );
    })();
    return this.predicted;
  }

  /** Image-tower features of the predicted-mask images (LP and zero-shot); null without a segmenter. */
  private ensurePredFeatures(): Promise<FeatureSet> | null {
    const pm = this.ensurePredicted();
    if (!pm) return null;
    const { config, backend } = this.ctx;
    this.predFeatures ??= pm.then((p) =>
      predictedFeatures(() => backend.loadClip(config.model.dir, this.device), this.ctx.cache, p, {
        dir: join(this.ctx.runDir, 'features'),
        batchSize: config.zeroshot.batchSize,
        bf16: this.bf16,
        signal: this.ctx.signal,
      }),
    );
    return this.predFeatures;
  }

  async zeroShot(): Promise<ZeroShotResult> {
    // features first, in their own phase: one barrier per phase on every rank (nested ones would pair
    // rank 0's inner barrier with the others' outer one)
    await this.ensureFeatures();
    return this.rootFirst(() => this.zeroShotHere());
  }

  private async zeroShotHere(): Promise<ZeroShotResult> {
    const path = join(this.ctx.runDir, 'cells', 'zeroshot.json');
    const done = readJson<ZeroShotResult>(path);
    if (done) {
      checkZeroShotResult(path, done, await this.sd);
      this.emit({ kind: 'cell-done', id: 'zeroshot', skipped: true, seconds: done.seconds });
      return done;
    }
    recordCell(this.ctx.runDir, 'zeroshot', this.ctx.config);
    const t0 = performance.now();
    this.emit({ kind: 'cell-start', id: 'zeroshot', epochs: 0, resumedFrom: 0 });
    await this.ensureFeatures();
    const predF = await this.ensurePredFeatures();
    const { config, backend } = this.ctx;
    const sd = await this.sd;
    const clip = await backend.loadClip(config.model.dir, this.device);
    let res: ZeroShotResult;
    try {
      const tok = await backend.loadTokenizer(config.model.dir);
      const bank = await encodePrompts(clip, tok, config.zeroshot.prompt, config.zeroshot.negativePrompt);
      const protocols = {} as Record<ZeroShotProtocol, PredGrid>;
      for (const p of ZS_PROTOCOLS) protocols[p] = { validate: {}, test: {} } as PredGrid;
      for (const split of ['validate', 'test'] as const) {
        for (const v of VARIANTS) {
          const f = this.features.get(v)!;
          const idx = sd[split];
          const scores = zeroShotScores(gatherRows(f.x, f.dim, idx), idx.length, bank, clip.logitScale);
          const failed = idx.filter((i) => f.failed.includes(i));
          for (const p of ZS_PROTOCOLS) protocols[p][split][v] = { probs: Array.from(scores[p]), failed };
        }
        if (predF) {
          const idx = sd[split];
          const scores = zeroShotScores(
            gatherRows(predF.x, predF.dim, idx),
            idx.length,
            bank,
            clip.logitScale,
          );
          for (const p of ZS_PROTOCOLS)
            protocols[p][split][PREDICTED] = { probs: Array.from(scores[p]), failed: [] };
        }
      }
      res = {
        id: 'zeroshot',
        prompts: bank.prompts,
        negativePrompts: bank.negativePrompts,
        logitScale: clip.logitScale,
        protocols,
        seconds: (performance.now() - t0) / 1000,
        finishedAt: new Date().toISOString(),
      };
    } finally {
      clip.dispose();
    }
    writeJsonAtomic(path, res);
    this.emit({ kind: 'cell-done', id: 'zeroshot', skipped: false, seconds: res.seconds });
    return res;
  }

  /** Train (or resume, or skip when finished) one LP/JFT cell; returns its predictions. */
  async trainCell(setup: TrainedSetup, trainVariant: Variant, seed: number): Promise<CellResult> {
    const { config, backend, cache, runDir } = this.ctx;
    const id = cellId(setup, trainVariant, seed);
    const dir = join(runDir, 'cells', id);
    const resultPath = join(dir, 'result.json');
    // a cell trained with other settings is not continued nor reported under these (cell-config.ts)
    checkCellConfigs(runDir, config, [id], `continue cell ${id}`);
    const done = readJson<CellResult>(resultPath);
    if (done) {
      checkCellResult(resultPath, done, id, await this.sd);
      this.emit({ kind: 'cell-done', id, skipped: true, seconds: done.seconds });
      return done;
    }
    mkdirSync(dir, { recursive: true });
    if (!this.ctx.dist || this.ctx.dist.rank === 0) recordCell(runDir, id, config);
    const t0 = performance.now();
    const prior = readJson<{ secondsBefore: number }>(join(dir, 'timing.json'))?.secondsBefore ?? 0;
    const sd = await this.sd;
    const lp = setup === 'linear-probe';
    const tc = lp ? config.linearProbe : config.finetune;
    let clf: ClassifierLike;
    let sources: Record<Variant, BatchSource>;
    if (lp) {
      await this.ensureFeatures();
      const fo = this.features.get('original')!;
      sources = { original: featureSource(fo, sd), masked: featureSource(this.features.get('masked')!, sd) };
      clf = await backend.createClassifier({
        modelDir: null,
        inputDim: fo.dim,
        numLabels: NUM_LABELS,
        device: this.device,
        lrHead: config.linearProbe.lr,
        weightDecay: config.linearProbe.weightDecay,
        seed,
      });
    } else {
      sources = { original: imageSource(cache, 'original'), masked: imageSource(cache, 'masked') };
      const ft = config.finetune;
      clf = await backend.createClassifier({
        modelDir: config.model.dir,
        numLabels: NUM_LABELS,
        device: this.device,
        lrEncoder: ft.lrEncoder,
        lrHead: ft.lrHead,
        weightDecay: ft.weightDecay,
        ...(ft.gradClip === null ? {} : { gradClip: ft.gradClip }),
        bf16: this.bf16,
        seed,
      });
    }
    const dist = this.ctx.dist && this.ctx.dist.worldSize > 1 ? this.ctx.dist : undefined;
    const root = !dist || dist.rank === 0;
    try {
      if (dist) {
        if (!clf.attachGroup) throw new Error('data-parallel training needs a classifier with attachGroup()');
        await clf.attachGroup(dist);
      }
      const existing = readJson<{ epochsDone: number }>(join(dir, 'state.json'));
      this.emit({ kind: 'cell-start', id, epochs: tc.epochs, resumedFrom: existing?.epochsDone ?? 0 });
      const trainIdx = limitTrain(sd.train, tc.maxTrainImages, seed);
      const st = await trainWithCheckpoints(clf, {
        dir,
        epochs: tc.epochs,
        batchSize: tc.batchSize,
        seed,
        trainIdx,
        valIdx: sd.validate,
        source: sources[trainVariant],
        selection: config.metrics.selection,
        patience: tc.patience,
        keepCheckpoints: tc.keepCheckpoints,
        maxUnreadableShare: tc.maxUnreadableShare,
        thresholdRule: config.metrics.thresholdRule,
        signal: this.ctx.signal,
        onProgress: (progress) => this.emit({ kind: 'cell-progress', id, progress }),
        ...(dist ? { dist } : {}),
        onEpoch: (record) => {
          if (root)
            writeJsonAtomic(join(dir, 'timing.json'), {
              secondsBefore: prior + (performance.now() - t0) / 1000,
            });
          this.emit({ kind: 'cell-epoch', id, record });
        },
      });
      const predictions = { validate: {}, test: {} } as PredGrid;
      for (const split of ['validate', 'test'] as const) {
        for (const v of VARIANTS) {
          const p = await predictAllSharded(
            (x, n) => clf.predict(x, n),
            sources[v],
            sd[split],
            tc.batchSize,
            NUM_LABELS,
            this.ctx.signal,
            undefined,
            dist,
          );
          predictions[split][v] = toPredSet(p);
        }
      }
      const pm = this.ensurePredicted();
      if (pm) {
        const predF = lp ? await this.ensurePredFeatures() : null;
        const source = predF ? featureSource(predF, sd) : predictedSource(cache, await pm);
        for (const split of ['validate', 'test'] as const) {
          const p = await predictAllSharded(
            (x, n) => clf.predict(x, n),
            source,
            sd[split],
            tc.batchSize,
            NUM_LABELS,
            this.ctx.signal,
            undefined,
            dist,
          );
          predictions[split][PREDICTED] = toPredSet(p);
        }
      }
      const res: CellResult = {
        id,
        setup,
        trainVariant,
        seed,
        predictions,
        history: st.history,
        bestEpoch: st.bestEpoch,
        seconds: prior + (performance.now() - t0) / 1000,
        device: this.device,
        finishedAt: new Date().toISOString(),
      };
      if (root) writeJsonAtomic(resultPath, res);
      await dist?.barrier();
      this.emit({ kind: 'cell-done', id, skipped: false, seconds: res.seconds });
      return res;
    } finally {
      clf.dispose();
    }
  }
}

/** The trained cells of a config, in run order: setup, then seed, then training variant. */
export function trainedCells(
  config: ExperimentConfig,
): { setup: TrainedSetup; train: Variant; seed: number }[] {
  const cells: { setup: TrainedSetup; train: Variant; seed: number }[] = [];
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

export type { Split };
