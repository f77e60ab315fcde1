/**
 * The Table-2 grid. Units of work ("cells", cells.ts), each resumable with its outputs on disk:
 *   features/<variant>            image-tower features, once per variant (shared by zero-shot and LP)
 *   cells/zeroshot.json           zero-shot predictions (both protocols), val + test, both variants
 *   cells/<setup>-<train>-s<seed>/  LP or JFT trained on `train` ∈ {original, masked} with one seed:
 *       state.json + epoch-<e>.ckpt + best.ckpt while training, result.json when finished
 *       (validation + test predictions on original and masked images of the best epoch).
 * A trained cell's predictions come from the classifier it trained, holding best.ckpt's weights, opened
 * as its kind (openedClassifier, ts/model/open.ts): a linear probe scores the cached features, a
 * fine-tuned model the images.
 * `--resume` skips finished cells, resumes an unfinished one from its last epoch checkpoint, then
 * re-aggregates (evaluate.ts) into results.json and the reports.
 */

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { readJson, writeJsonAtomic } from '../common/io.js';
import type { ClassifierOptions } from '../model/classifier.js';
import { classifierFor, inputOf, type TrainedKind } from '../model/kinds.js';
import { type OpenedModel, openedClassifier } from '../model/open.js';
import { type GroupLike, ROOT_WORK_TIMEOUT_MS } from '../model/process-group.js';
import type { ImageInput } from '../model/records.js';
import { encodePrompts, type ZeroShotProtocol, ZS_PROTOCOLS, zeroShotScores } from '../model/zeroshot.js';
import type { Backend, CacheLike } from './backend.js';
import { checkCellConfigs, recordCell } from './cell-config.js';
import {
  type CellResult,
  cellId,
  featureSource,
  imageSource,
  limitTrain,
  type PredGrid,
  type SplitData,
  splitData,
  toPredSet,
  type ZeroShotResult,
} from './cells.js';
import { type ExperimentConfig, PREDICTED, type TestVariant, VARIANTS, type Variant } from './config.js';
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
  predictAllSharded,
  type TrainProgress,
  type TrainState,
  trainWithCheckpoints,
} from './train.js';

/** Progress of a run, as `RunOptions.onEvent` receives it (the CLI's progress bars). */
export type GridEvent =
  | { kind: 'phase'; name: string; detail?: string }
  | { kind: 'features'; variant: string; done: number; total: number }
  | { kind: 'cell-start'; id: string; epochs: number; resumedFrom: number }
  | { kind: 'cell-progress'; id: string; progress: TrainProgress }
  | { kind: 'cell-epoch'; id: string; record: EpochRecord }
  | { kind: 'cell-done'; id: string; skipped: boolean; seconds: number };

/**
 * What a Grid works with: the run's config, backend, folder and cache, how it is stopped and whom it
 * tells, and (data parallel, or a device a launcher chose) its group and device.
 */
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

/** One trained cell while it runs: where it lives and what it was asked for. */
interface TrainedCell {
  id: string;
  dir: string;
  setup: TrainedKind;
  trainVariant: Variant;
  seed: number;
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
  async trainCell(setup: TrainedKind, trainVariant: Variant, seed: number): Promise<CellResult> {
    const { config, runDir } = this.ctx;
    const id = cellId(setup, trainVariant, seed);
    const cell: TrainedCell = { id, dir: join(runDir, 'cells', id), setup, trainVariant, seed };
    const resultPath = join(cell.dir, 'result.json');
    // a cell trained with other settings is not continued nor reported under these (cell-config.ts)
    checkCellConfigs(runDir, config, [id], `continue cell ${id}`);
    const done = readJson<CellResult>(resultPath);
    if (done) {
      checkCellResult(resultPath, done, id, await this.sd);
      this.emit({ kind: 'cell-done', id, skipped: true, seconds: done.seconds });
      return done;
    }
    mkdirSync(cell.dir, { recursive: true });
    if (this.root) recordCell(runDir, id, config);
    const t0 = performance.now();
    const prior = readJson<{ secondsBefore: number }>(join(cell.dir, 'timing.json'))?.secondsBefore ?? 0;
    const seconds = () => prior + (performance.now() - t0) / 1000;
    const { state: st, model } = await this.train(cell, seconds);
    const predictions = await this.predictCell(cell, model);
    const res: CellResult = {
      id,
      setup,
      trainVariant,
      seed,
      predictions,
      history: st.history,
      bestEpoch: st.bestEpoch,
      seconds: seconds(),
      device: this.device,
      finishedAt: new Date().toISOString(),
    };
    if (this.root) writeJsonAtomic(resultPath, res);
    await this.group?.barrier();
    this.emit({ kind: 'cell-done', id, skipped: false, seconds: res.seconds });
    return res;
  }

  /** The group when data parallel over more than one rank. */
  private get group(): GroupLike | undefined {
    const d = this.ctx.dist;
    return d && d.worldSize > 1 ? d : undefined;
  }

  /** Whether this process writes the run's files (rank 0, or the only process). */
  private get root(): boolean {
    return !this.ctx.dist || this.ctx.dist.rank === 0;
  }

  /** The config block of a trained setup. */
  private settingsOf(setup: TrainedKind) {
    return setup === 'linear-probe' ? this.ctx.config.linearProbe : this.ctx.config.finetune;
  }

  /**
   * Trains (or resumes) the cell's classifier to the end; best.ckpt then holds its best epoch, and so
   * does the classifier, returned as an opened model of the cell's kind (the caller disposes it).
   */
  private async train(
    cell: TrainedCell,
    seconds: () => number,
  ): Promise<{ state: TrainState; model: OpenedModel }> {
    const { config } = this.ctx;
    const sd = await this.sd;
    const tc = this.settingsOf(cell.setup);
    const features = inputOf(cell.setup) === 'features';
    if (features) await this.ensureFeatures();
    const source = features
      ? featureSource(this.features.get(cell.trainVariant)!, sd)
      : imageSource(this.ctx.cache, cell.trainVariant);
    const clf = await this.ctx.backend.createClassifier(this.classifierOptions(cell));
    const dist = this.group;
    try {
      if (dist) {
        if (!clf.attachGroup) throw new Error('data-parallel training needs a classifier with attachGroup()');
        await clf.attachGroup(dist);
      }
      const existing = readJson<{ epochsDone: number }>(join(cell.dir, 'state.json'));
      this.emit({
        kind: 'cell-start',
        id: cell.id,
        epochs: tc.epochs,
        resumedFrom: existing?.epochsDone ?? 0,
      });
      const state = await trainWithCheckpoints(clf, {
        dir: cell.dir,
        name: `cell ${cell.id}`,
        epochs: tc.epochs,
        batchSize: tc.batchSize,
        seed: cell.seed,
        trainIdx: limitTrain(sd.train, tc.maxTrainImages, cell.seed),
        valIdx: sd.validate,
        source,
        selection: config.metrics.selection,
        patience: tc.patience,
        keepCheckpoints: tc.keepCheckpoints,
        maxUnreadableShare: tc.maxUnreadableShare,
        thresholdRule: config.metrics.thresholdRule,
        signal: this.ctx.signal,
        onProgress: (progress) => this.emit({ kind: 'cell-progress', id: cell.id, progress }),
        ...(dist ? { dist } : {}),
        onEpoch: (record) => {
          if (this.root) writeJsonAtomic(join(cell.dir, 'timing.json'), { secondsBefore: seconds() });
          this.emit({ kind: 'cell-epoch', id: cell.id, record });
        },
      });
      // The classifier holds best.ckpt's weights (trainWithCheckpoints loads them last): it predicts as
      // it is, without reading the checkpoint again. Without the file it would hold the last epoch's.
      const best = join(cell.dir, 'best.ckpt');
      if (!existsSync(best))
        throw new DataError('missing-file', `cell ${cell.id} has no best.ckpt to predict with`, {
          file: best,
        });
      const model = openedClassifier(clf, {
        kind: cell.setup,
        headOnly: features,
        device: this.device,
        checkpoint: best,
        modelDir: config.model.dir,
        backend: this.ctx.backend,
      });
      return { state, model };
    } catch (e) {
      await clf.dispose();
      throw e;
    }
  }

  /** The classifier a cell trains: its kind's shape (ts/model/kinds.ts) with the setup's settings. */
  private classifierOptions(cell: TrainedCell): ClassifierOptions {
    const { config } = this.ctx;
    const where = {
      modelDir: config.model.dir,
      inputDim: this.features.get('original')?.dim ?? 0,
      device: this.device,
    };
    if (cell.setup === 'linear-probe') {
      const lp = config.linearProbe;
      return classifierFor(cell.setup, where, {
        lrHead: lp.lr,
        weightDecay: lp.weightDecay,
        seed: cell.seed,
      });
    }
    const ft = config.finetune;
    return classifierFor(cell.setup, where, {
      lrEncoder: ft.lrEncoder,
      lrHead: ft.lrHead,
      weightDecay: ft.weightDecay,
      ...(ft.gradClip === null ? {} : { gradClip: ft.gradClip }),
      bf16: this.bf16,
      seed: cell.seed,
    });
  }

  /** Validation and test predictions of the cell's best model on every test variant; disposes it. */
  private async predictCell(cell: TrainedCell, model: OpenedModel): Promise<PredGrid> {
    try {
      const sd = await this.sd;
      const sources = await this.testSources(model, sd);
      const { predictFeatures } = model;
      // feature sources give Float32Array rows
      const predict = predictFeatures
        ? (x: ImageInput, n: number) => predictFeatures(x as Float32Array, n)
        : model.predict;
      const predictions = { validate: {}, test: {} } as PredGrid;
      for (const split of ['validate', 'test'] as const)
        for (const [v, source] of sources) {
          const p = await this.predictRows(predict, source, sd[split], this.settingsOf(cell.setup).batchSize);
          predictions[split][v] = toPredSet(p);
        }
      return predictions;
    } finally {
      await model.dispose();
    }
  }

  /** What a model is tested on: cached features when it scores them (zero-shot, LP), else the images. */
  private async testSources(model: OpenedModel, sd: SplitData): Promise<[TestVariant, BatchSource][]> {
    const { cache } = this.ctx;
    const features = model.predictFeatures !== undefined;
    if (features) await this.ensureFeatures();
    const out: [TestVariant, BatchSource][] = VARIANTS.map((v) => [
      v,
      features ? featureSource(this.features.get(v)!, sd) : imageSource(cache, v),
    ]);
    const pm = this.ensurePredicted();
    if (pm) {
      const predF = features ? await this.ensurePredFeatures() : null;
      out.push([PREDICTED, predF ? featureSource(predF, sd) : predictedSource(cache, await pm)]);
    }
    return out;
  }

  /** Predictions of `rows`, shared out over the group's ranks when data parallel. */
  private predictRows(
    predict: (x: ImageInput, n: number) => Promise<Float32Array>,
    source: BatchSource,
    rows: number[],
    batchSize: number,
  ) {
    const { signal } = this.ctx;
    return predictAllSharded(predict, source, rows, {
      batchSize,
      ...(signal ? { signal } : {}),
      ...(this.group ? { dist: this.group } : {}),
    });
  }
}
