/**
 * Testing a run's models on other datasets (config.test.datasets). After the grid, every model (the
 * zero-shot protocols and each trained cell's best.ckpt) predicts each test dataset's test split on
 * original and masked images (and on predicted contours with config.segmenter). Thresholds and
 * operating points come from the run's own validation split (the training dataset), as a model
 * deployed on another site's images carries them: the target dataset's labels never tune anything.
 * One Table 2 per test dataset.
 *
 * On disk, per test dataset, `<run>/cross/<name>/`:
 *   data.json                 the dataset spec, its cache fingerprint and the test rows' labels
 *   features/<variant>.*      image-tower features of its cache rows (zero-shot, linear probes)
 *   predicted-masks/          with config.segmenter: its contours on the test rows ('masked-pred')
 *   predictions/<model>.json  one model's test predictions, both variants (the unit of resume)
 *   evaluation.json           the scored section of results.json; present = finished, skipped on resume
 * Both record the fingerprint of each model (model-fingerprint.ts): predictions of a model that has
 * since changed (a retrained cell) are redone, never scored with the new model's thresholds.
 */

import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DataError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { readJson, writeJsonAtomic } from '../common/io.js';
import { NUM_LABELS } from '../common/labels.js';
import type { DatasetName } from '../data/datasets/names.js';
import { buildDatasetIndex } from '../data/datasets/registry.js';
import { preprocessConflicts, type ResolvedPreprocess } from '../images/preprocess.js';
import { inputOf } from '../model/kinds.js';
import { openModel } from '../model/open.js';
import type { ImageInput } from '../model/records.js';
import type { DataFingerprint } from '../model/run-files.js';
import { encodePrompts, type ZeroShotProtocol, ZS_PROTOCOLS, zeroShotScores } from '../model/zeroshot.js';
import type { Backend, CacheLike } from './backend.js';
import {
  type CellResult,
  featureSource,
  imageSource,
  type PredSet,
  type SplitData,
  splitData,
  toPredSet,
  type ZeroShotResult,
} from './cells.js';
import { type ExperimentConfig, PREDICTED, VARIANTS, type Variant } from './config.js';
import { type Evaluation, evaluate, testPrevalence } from './evaluate.js';
import { computeFeatures, type FeatureSet, gatherRows } from './features.js';
import { dataFingerprint, fingerprintChanges } from './fingerprint.js';
import type { GridEvent } from './grid.js';
import { cellModelFingerprint, zeroShotModelFingerprint } from './model-fingerprint.js';
import {
  ensurePredictedMasks,
  type PredictedMasks,
  predictedFeatures,
  predictedSource,
} from './predicted-masks.js';
import type { BatchSource } from './train.js';
import { predictAll } from './train.js';

/** A test dataset with its defaults filled in. */
export interface TestDatasetSpec {
  name: string;
  dataset: DatasetName;
  root: string;
  chexmask: string;
  /** Cache folder of its test split (the parent of the keyed cache, as data.cache). */
  cache: string;
}

/** config.test.datasets with names and cache folders resolved. */
export function testDatasets(config: ExperimentConfig): TestDatasetSpec[] {
  return config.test.datasets.map((t) => {
    const name = t.name ?? t.dataset;
    return {
      name,
      dataset: t.dataset,
      root: t.root,
      chexmask: t.chexmask,
      // a sibling of the run's cache folder (a trailing slash would put it inside)
      cache: t.cache ?? `${config.data.cache.replace(/[\\/]+$/, '')}-test-${name}`,
    };
  });
}

/**
 * Checked when a run starts, before the grid: a test dataset still to evaluate needs its cache, or its
 * root and CheXmask CSV to build one. Its root is indexed (without looking for the images) with the
 * run's label policy and views, so a root one folder off, a dataset of another kind or one with no
 * test-split image fails at once, not after hours of training.
 * @throws {ConfigError} naming the field, the path and what is wrong.
 */
export async function checkTestDatasets(config: ExperimentConfig, runDir: string): Promise<void> {
  const problems: string[] = [];
  for (const [i, t] of testDatasets(config).entries()) {
    const done = readJson<CrossDatasetResult>(join(crossDir(runDir, t.name), 'evaluation.json'));
    if (done && sameSpec(done, t)) continue;
    const missing = (['root', 'chexmask'] as const).filter((k) => !existsSync(t[k]));
    // a test cache built beforehand serves without its root
    if (missing.length) {
      if (!existsSync(t.cache))
        for (const k of missing) problems.push(`  - test.datasets.${i}.${k}: ${t[k]} does not exist`);
      continue;
    }
    const problem = await testSplitProblem(config, t);
    if (problem) problems.push(`  - test.datasets.${i}.root: ${problem}`);
  }
  if (problems.length)
    throw new ConfigError(
      `cannot test on the datasets of test.datasets (checked before training):\n${problems.join('\n')}`,
    );
}

/** Why `t.root` gives no test-split image to test on (its index fails, or lists none), or null. */
async function testSplitProblem(config: ExperimentConfig, t: TestDatasetSpec): Promise<string | null> {
  const d = config.data;
  try {
    const { entries } = await buildDatasetIndex({
      dataset: t.dataset,
      root: t.root,
      views: d.views,
      uncertain: d.uncertain,
      blank: d.blank,
      requirePositive: d.requirePositive,
      readerRule: d.readerRule,
      checkFiles: false,
    });
    if (!entries.some((e) => e.split === 'test')) return `${t.root} lists no ${t.dataset} test-split image`;
    return null;
  } catch (e) {
    return `${t.root} is not a ${t.dataset} root as the index reads it: ${(e as Error).message}`;
  }
}

/**
 * Builds (or opens) a test dataset's cache, with `preprocess` (the run's own cache's) when given;
 * returns the keyed folder and the data step's summaries.
 */
export type PrepareTestData = (
  t: TestDatasetSpec,
  preprocess?: ResolvedPreprocess,
) => Promise<{ cacheDir: string; summary?: Record<string, unknown> }>;

/** `data.json` of a test dataset: what its predictions were made on. */
export interface CrossData {
  spec: TestDatasetSpec;
  fingerprint: DataFingerprint;
  summary: Record<string, unknown> | null;
  /** Test rows, in prediction order; labels and labelMask are [rows, 5] in that order. */
  rows: number;
  labels: number[];
  labelMask: number[];
  recordedAt: string;
}

/** Test predictions per variant ('masked-pred' with config.segmenter). */
type TestPreds = Record<Variant, PredSet> & Partial<Record<typeof PREDICTED, PredSet>>;

/** `predictions/<model>.json`: a model's test predictions (zero-shot: per protocol). */
export interface CrossPredictions {
  model: string;
  /** The test data's entries digest: predictions of other data are never scored. */
  entriesDigest: string;
  /** The model that made them (model-fingerprint.ts): another model's predictions are redone. */
  modelFingerprint: string;
  test?: TestPreds;
  protocols?: Record<ZeroShotProtocol, TestPreds>;
}

/** One test dataset's section of results.json (and its evaluation.json). */
export interface CrossDatasetResult {
  name: string;
  dataset: DatasetName;
  root: string;
  chexmask: string;
  cache: string;
  /** Where each model's thresholds and operating points were chosen. */
  thresholdsFrom: 'training dataset validation split';
  counts: { test: number };
  testPrevalence: Record<string, number>;
  allNegativeMeanLabelAccuracy: number;
  /** Test images a model could not read (counted over models and variants). */
  skippedImages: { predictions: number };
  fingerprint: DataFingerprint;
  summary: Record<string, unknown> | null;
  /** The models scored: 'zeroshot' and the trained cells' ids. */
  models: string[];
  /** Each model's fingerprint when it was scored (model-fingerprint.ts). */
  modelFingerprints: Record<string, string>;
  /** Time to predict (and score) this dataset, over the runs that did it. */
  seconds: number;
  evaluation: Evaluation;
  evaluatedAt: string;
}

export interface CrossDatasetContext {
  config: ExperimentConfig;
  backend: Backend;
  runDir: string;
  device: string;
  bf16: boolean;
  /** The run's own splits (validation predictions give the thresholds). */
  sd: SplitData;
  zs: ZeroShotResult | null;
  trained: CellResult[];
  /**
   * The preprocessing of the run's own cache: the models saw images made this way, so a test
   * dataset's cache is built with it, and one made otherwise is refused.
   */
  preprocess?: ResolvedPreprocess;
  /** Default: open `spec.cache` as it is (a cache built beforehand). */
  prepare?: PrepareTestData;
  signal?: StopSignal;
  onEvent?: (e: GridEvent) => void;
}

const crossDir = (runDir: string, name: string) => join(runDir, 'cross', name);
const sameModels = (a: string[], b: string[]) => [...a].sort().join() === [...b].sort().join();
const sameSpec = (a: TestDatasetSpec, b: TestDatasetSpec) =>
  a.dataset === b.dataset && a.root === b.root && a.chexmask === b.chexmask && a.cache === b.cache;

function modelIds(zs: ZeroShotResult | null, trained: CellResult[]): string[] {
  return [...(zs ? ['zeroshot'] : []), ...trained.map((c) => c.id)];
}

/** The fingerprint of every model now ('' for a cell without best.ckpt: predicting it fails clearly). */
export function modelFingerprints(
  runDir: string,
  config: ExperimentConfig,
  zs: ZeroShotResult | null,
  trained: CellResult[],
): Record<string, string> {
  const out: Record<string, string> = {};
  if (zs) out['zeroshot'] = zeroShotModelFingerprint(config.model.dir, zs.prompts, zs.negativePrompts);
  for (const c of trained) out[c.id] = cellModelFingerprint(runDir, c.id) ?? '';
  return out;
}

/** The models whose recorded fingerprint differs from now (or was never recorded). */
function changedModels(recorded: Record<string, string> | undefined, now: Record<string, string>): string[] {
  return Object.keys(now).filter((m) => !now[m] || recorded?.[m] !== now[m]);
}

/**
 * Every test dataset of the config, evaluated (or read back when finished with the same spec and
 * models). Returns the sections of results.json by name.
 * @throws {DataError} (rejects) a test dataset's cache has no test-split image, or a trained cell has
 *   no best.ckpt.
 */
export async function crossDatasetEvaluations(
  ctx: CrossDatasetContext,
): Promise<Record<string, CrossDatasetResult>> {
  const out: Record<string, CrossDatasetResult> = {};
  const models = modelIds(ctx.zs, ctx.trained);
  const specs = testDatasets(ctx.config);
  const fingerprints = specs.length ? modelFingerprints(ctx.runDir, ctx.config, ctx.zs, ctx.trained) : {};
  for (const spec of specs) {
    const id = `test:${spec.name}`;
    const done = readJson<CrossDatasetResult>(join(crossDir(ctx.runDir, spec.name), 'evaluation.json'));
    // the same models in any order: `cxrmask eval` lists a run's cells alphabetically
    if (done && sameSpec(done, spec) && sameModels(done.models, models)) {
      const changed = [
        ...changedModels(done.modelFingerprints, fingerprints),
        ...(scoredOnOtherPreprocessing(done, ctx.preprocess) ? ['the test cache preprocessing'] : []),
      ];
      if (!changed.length) {
        ctx.onEvent?.({ kind: 'cell-done', id, skipped: true, seconds: done.seconds });
        out[spec.name] = done;
        continue;
      }
      ctx.onEvent?.({
        kind: 'phase',
        name: 'test evaluation outdated',
        detail: `${spec.name}: ${changed.join(',')} changed since it was scored`,
      });
    }
    const t0 = performance.now();
    ctx.onEvent?.({ kind: 'cell-start', id, epochs: 0, resumedFrom: 0 });
    const prepared = ctx.prepare ? await ctx.prepare(spec, ctx.preprocess) : { cacheDir: spec.cache };
    const cache = await ctx.backend.openCache(prepared.cacheDir);
    try {
      checkTestPreprocess(spec, prepared.cacheDir, cache.preprocess, ctx.preprocess);
      await predictTestDataset(ctx, spec, cache, prepared.summary ?? null, fingerprints);
    } finally {
      cache.close?.();
    }
    const seconds = (performance.now() - t0) / 1000;
    out[spec.name] = await scoreTestDataset(ctx.runDir, ctx.config, spec, ctx.sd, ctx.zs, ctx.trained, {
      seconds,
      fingerprints,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    ctx.onEvent?.({ kind: 'cell-done', id, skipped: false, seconds });
  }
  return out;
}

/**
 * Whether a finished evaluation was scored on a cache made with other preprocessing than the run's
 * (as earlier versions did for a --preset paper run): its cache.json says so. A cache that is gone or
 * records none cannot tell, and the evaluation stands.
 */
function scoredOnOtherPreprocessing(done: CrossDatasetResult, run: ResolvedPreprocess | undefined): boolean {
  const dir = done.fingerprint.cacheDir;
  if (!run || !dir) return false;
  try {
    const recorded = readJson<{ preprocess?: ResolvedPreprocess }>(join(dir, 'cache.json'))?.preprocess;
    return !!recorded && preprocessConflicts(run, recorded).length > 0;
  } catch {
    return true; // a damaged cache.json: score again (preparing the cache says what is wrong)
  }
}

/**
 * @throws {ConfigError} the test dataset's cache was made with other preprocessing than the run's
 *   cache (a `--preset paper` run tested on a cache of the model's default, or the other way round):
 *   its scores would measure the preprocessing gap, not the dataset shift.
 */
function checkTestPreprocess(
  spec: TestDatasetSpec,
  dir: string,
  test: ResolvedPreprocess | undefined,
  run: ResolvedPreprocess | undefined,
): void {
  if (!test || !run) return;
  const diff = preprocessConflicts(run, test);
  if (diff.length)
    throw new ConfigError(
      `test dataset ${spec.name}: its cache ${dir} was made with other preprocessing than the run's cache (${diff.join(', ').replaceAll('(asked)', '(test cache)').replaceAll('(trained)', '(run)')}); build it with the run's settings (\`cxrmask cache --preset ${run.preset}\`) or let the run build it in another folder (test.datasets[].cache)`,
    );
}

/**
 * A test dataset's data.json, written afresh: its spec, fingerprint and the labels of its test rows.
 * Stored predictions, features and evaluation of other data than these are dropped, never scored.
 * @throws {DataError} `no-test-images`: the cache has no test-split row.
 */
async function recordTestData(
  spec: TestDatasetSpec,
  cache: CacheLike,
  dir: string,
  summary: Record<string, unknown> | null,
): Promise<{ sdT: SplitData; fingerprint: DataFingerprint }> {
  const dataPath = join(dir, 'data.json');
  const fingerprint = dataFingerprint(cache);
  const before = readJson<CrossData>(dataPath);
  if (
    before &&
    (!sameSpec(before.spec, spec) || fingerprintChanges(before.fingerprint, fingerprint).length)
  ) {
    rmSync(join(dir, 'predictions'), { recursive: true, force: true });
    rmSync(join(dir, 'features'), { recursive: true, force: true });
    rmSync(join(dir, 'evaluation.json'), { force: true });
  }
  const sdT = await splitData(cache);
  const rows = sdT.test;
  if (!rows.length)
    throw new DataError(
      'no-test-images',
      `test dataset "${spec.name}" (${spec.dataset}) has no test-split image in its cache`,
      { file: cache.dir ?? spec.cache },
    );
  const data: CrossData = {
    spec,
    fingerprint,
    summary,
    rows: rows.length,
    labels: Array.from(gatherRows(sdT.labels, NUM_LABELS, rows)),
    labelMask: Array.from(gatherRows(sdT.labelMask, NUM_LABELS, rows)),
    recordedAt: new Date().toISOString(),
  };
  writeJsonAtomic(dataPath, data);
  return { sdT, fingerprint };
}

/**
 * `predictions/<model>.json` of one test dataset: which models still need predicting (none stored for
 * these data, or stored by another model than now, e.g. a retrained cell), and saving them.
 */
class TestPredictionFiles {
  private readonly stale = new Set<string>();
  constructor(
    private readonly dir: string,
    private readonly entriesDigest: string,
    private readonly fingerprints: Record<string, string>,
    onOutdated: (model: string) => void,
  ) {
    for (const m of Object.keys(fingerprints)) {
      const p = readJson<CrossPredictions>(this.path(m));
      if (p?.entriesDigest === entriesDigest && p.modelFingerprint !== fingerprints[m]) {
        this.stale.add(m);
        onOutdated(m);
      }
    }
  }
  private path(model: string): string {
    return join(this.dir, 'predictions', `${model}.json`);
  }
  missing(model: string): boolean {
    return (
      this.stale.has(model) ||
      readJson<CrossPredictions>(this.path(model))?.entriesDigest !== this.entriesDigest
    );
  }
  save(p: Omit<CrossPredictions, 'entriesDigest' | 'modelFingerprint'>): void {
    writeJsonAtomic(this.path(p.model), {
      ...p,
      entriesDigest: this.entriesDigest,
      modelFingerprint: this.fingerprints[p.model] ?? '',
    });
    this.stale.delete(p.model);
  }
}

/** Image-tower features of both variants of the test images (read back when on disk). */
async function testFeatures(
  ctx: CrossDatasetContext,
  cache: CacheLike,
  featDir: string,
): Promise<Map<Variant, FeatureSet>> {
  const { config, backend, device, signal } = ctx;
  const features = new Map<Variant, FeatureSet>();
  const onDisk = VARIANTS.every((v) => existsSync(join(featDir, `${v}.json`)));
  const clip = onDisk ? null : await backend.loadClip(config.model.dir, device);
  try {
    const sets = await computeFeatures(clip, cache, VARIANTS, featDir, {
      batchSize: config.zeroshot.batchSize,
      bf16: ctx.bf16,
      signal,
    });
    for (const [v, f] of sets) features.set(v, f);
  } finally {
    clip?.dispose();
  }
  return features;
}

/** Zero-shot scores of the test rows, per protocol and variant, from their features. */
async function zeroShotTestPreds(
  ctx: CrossDatasetContext,
  rows: number[],
  sets: [Variant | typeof PREDICTED, FeatureSet][],
): Promise<Record<ZeroShotProtocol, TestPreds>> {
  const { config, backend, device } = ctx;
  const clip = await backend.loadClip(config.model.dir, device);
  try {
    const tok = await backend.loadTokenizer(config.model.dir);
    const bank = await encodePrompts(clip, tok, config.zeroshot.prompt, config.zeroshot.negativePrompt);
    const protocols = {} as Record<ZeroShotProtocol, TestPreds>;
    for (const p of ZS_PROTOCOLS) protocols[p] = {} as TestPreds;
    for (const [v, f] of sets) {
      const scores = zeroShotScores(gatherRows(f.x, f.dim, rows), rows.length, bank, clip.logitScale);
      const failed = rows.filter((i) => f.failed.includes(i));
      for (const p of ZS_PROTOCOLS) protocols[p][v] = { probs: Array.from(scores[p]), failed };
    }
    return protocols;
  } finally {
    clip.dispose();
  }
}

/**
 * One trained cell's predictions of the test rows, from its best.ckpt: a linear probe on the
 * features, a fine-tuned model on the images.
 * @throws {DataError} `missing-file`: the cell has no best.ckpt.
 */
async function cellTestPreds(
  ctx: CrossDatasetContext,
  spec: TestDatasetSpec,
  cell: CellResult,
  sdT: SplitData,
  sources: (onFeatures: boolean) => [Variant | typeof PREDICTED, BatchSource][],
): Promise<TestPreds> {
  const { config, runDir, signal, backend, device } = ctx;
  const ckpt = join(runDir, 'cells', cell.id, 'best.ckpt');
  if (!existsSync(ckpt))
    throw new DataError('missing-file', `cell ${cell.id} has no best.ckpt to test on "${spec.name}"`, {
      file: ckpt,
    });
  // the kind best.ckpt records must be the cell's setup; it says what the model scores
  const model = await openModel({
    modelDir: config.model.dir,
    checkpoint: ckpt,
    kind: cell.setup,
    device,
    bf16: ctx.bf16,
    backend,
  });
  try {
    const { predictFeatures } = model;
    const test = {} as TestPreds;
    const batchSize = predictFeatures ? config.linearProbe.batchSize : config.finetune.batchSize;
    // feature sources give Float32Array rows
    const predict = predictFeatures
      ? (x: ImageInput, n: number) => predictFeatures(x as Float32Array, n)
      : model.predict;
    for (const [v, source] of sources(Boolean(predictFeatures))) {
      const p = await predictAll(predict, source, sdT.test, { batchSize, ...(signal ? { signal } : {}) });
      test[v] = toPredSet(p);
    }
    return test;
  } finally {
    await model.dispose();
  }
}

/** Writes data.json and every missing model's predictions/<model>.json for one test dataset. */
async function predictTestDataset(
  ctx: CrossDatasetContext,
  spec: TestDatasetSpec,
  cache: CacheLike,
  summary: Record<string, unknown> | null,
  fingerprints: Record<string, string>,
): Promise<void> {
  const { config, backend, device, signal } = ctx;
  const dir = crossDir(ctx.runDir, spec.name);
  const { sdT, fingerprint } = await recordTestData(spec, cache, dir, summary);
  const rows = sdT.test;
  const files = new TestPredictionFiles(dir, fingerprint.entriesDigest, fingerprints, (m) =>
    ctx.onEvent?.({
      kind: 'phase',
      name: 'test predictions outdated',
      detail: `${spec.name}/${m}: made by another model than now, predicted again`,
    }),
  );
  const zsMissing = () => Boolean(ctx.zs) && files.missing('zeroshot');

  // image-tower features of both variants: zero-shot and the linear probes read them
  const needFeatures =
    zsMissing() ||
    ctx.trained.some((c) => c.setup !== 'zeroshot' && inputOf(c.setup) === 'features' && files.missing(c.id));
  const features = needFeatures
    ? await testFeatures(ctx, cache, join(dir, 'features'))
    : new Map<Variant, FeatureSet>();

  // with config.segmenter: every model is also tested on contours its segmenter draws on these images
  const anyMissing = zsMissing() || ctx.trained.some((c) => files.missing(c.id));
  const pm = anyMissing ? await predictedMasks(ctx, cache, rows, join(dir, 'predicted-masks')) : null;
  const predF =
    pm && needFeatures
      ? await predictedFeatures(() => backend.loadClip(config.model.dir, device), cache, pm, {
          dir: join(dir, 'features'),
          batchSize: config.zeroshot.batchSize,
          bf16: ctx.bf16,
          ...(signal ? { signal } : {}),
        })
      : null;

  if (zsMissing()) {
    const sets: [Variant | typeof PREDICTED, FeatureSet][] = VARIANTS.map((v) => [v, features.get(v)!]);
    if (predF) sets.push([PREDICTED, predF]);
    files.save({ model: 'zeroshot', protocols: await zeroShotTestPreds(ctx, rows, sets) });
  }

  const sources = (onFeatures: boolean) => {
    const s: [Variant | typeof PREDICTED, BatchSource][] = VARIANTS.map((v) => [
      v,
      onFeatures ? featureSource(features.get(v)!, sdT) : imageSource(cache, v),
    ]);
    if (pm) s.push([PREDICTED, onFeatures ? featureSource(predF!, sdT) : predictedSource(cache, pm)]);
    return s;
  };
  for (const cell of ctx.trained) {
    if (!files.missing(cell.id)) continue;
    const test = await cellTestPreds(ctx, spec, cell, sdT, sources);
    files.save({ model: cell.id, test });
  }
}

/** The run's segmenter's masks of the test rows (config.segmenter; null without one), on disk once. */
async function predictedMasks(
  ctx: CrossDatasetContext,
  cache: CacheLike,
  rows: number[],
  dir: string,
): Promise<PredictedMasks | null> {
  const sc = ctx.config.segmenter;
  if (!sc) return null;
  const { loadSegmenter } = ctx.backend;
  if (!loadSegmenter) throw new Error(`backend ${ctx.backend.name} cannot load a segmenter`);
  const c = cache as CacheLike & { size?: number; contour?: { thickness: number } };
  return ensurePredictedMasks(
    () => loadSegmenter(sc.dir, sc.weights, { device: ctx.device, threshold: sc.threshold }),
    cache,
    {
      dir,
      rows,
      size: c.size ?? 224,
      thickness: c.contour?.thickness ?? 2,
      segmenter: { dir: sc.dir, weights: sc.weights, threshold: sc.threshold },
      batchSize: ctx.config.zeroshot.batchSize,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    },
  );
}

/**
 * One label table for scoring: the run's rows (validation picks the thresholds) followed by the test
 * dataset's test rows, so evaluate() scores source-tuned thresholds on target predictions unchanged.
 */
function joinedSplits(source: SplitData, data: CrossData): SplitData {
  const n0 = source.labels.length / NUM_LABELS;
  const labels = new Float32Array(source.labels.length + data.labels.length);
  labels.set(source.labels);
  labels.set(data.labels, source.labels.length);
  const labelMask = new Float32Array(labels.length);
  labelMask.set(source.labelMask);
  labelMask.set(data.labelMask, source.labelMask.length);
  return {
    train: [],
    validate: source.validate,
    test: Array.from({ length: data.rows }, (_, j) => n0 + j),
    labels,
    labelMask,
  };
}

/**
 * Scores one test dataset from its files (data.json, predictions/) with the config's metric settings
 * and writes evaluation.json. Used after predicting and by re-evaluation.
 * @throws {Error} data.json or a model's predictions are missing.
 */
export async function scoreTestDataset(
  runDir: string,
  config: ExperimentConfig,
  spec: TestDatasetSpec,
  sd: SplitData,
  zs: ZeroShotResult | null,
  trained: CellResult[],
  o: {
    /** The prediction's seconds; default: those evaluation.json recorded. */
    seconds?: number;
    /** The models' fingerprints; default: computed from their files. */
    fingerprints?: Record<string, string>;
    /** Stops the bootstrap at its next replicate. */
    signal?: StopSignal;
  } = {},
): Promise<CrossDatasetResult> {
  const fingerprints = o.fingerprints ?? modelFingerprints(runDir, config, zs, trained);
  const dir = crossDir(runDir, spec.name);
  const before = readJson<CrossDatasetResult>(join(dir, 'evaluation.json'));
  const data = readJson<CrossData>(join(dir, 'data.json'));
  if (!data) throw new Error(`${dir} has no data.json: test dataset "${spec.name}" was not predicted`);
  const read = (m: string) => {
    const p = readJson<CrossPredictions>(join(dir, 'predictions', `${m}.json`));
    if (!p || p.entriesDigest !== data.fingerprint.entriesDigest)
      throw new Error(`${dir}: no predictions of ${m} on the recorded data`);
    if (p.modelFingerprint !== fingerprints[m])
      throw new Error(
        `${dir}: the predictions of ${m} were made by another model than the run's now (retrained?); \`cxrmask run --resume\` predicts them again`,
      );
    return p;
  };
  const zsX: ZeroShotResult | null = zs
    ? {
        ...zs,
        protocols: Object.fromEntries(
          ZS_PROTOCOLS.map((p) => [
            p,
            { validate: zs.protocols[p].validate, test: read('zeroshot').protocols![p] },
          ]),
        ) as ZeroShotResult['protocols'],
      }
    : null;
  const trainedX = trained.map((c) => ({
    ...c,
    predictions: { validate: c.predictions.validate, test: read(c.id).test! },
  }));
  const joined = joinedSplits(sd, data);
  const evaluation = await evaluate(config, joined, zsX, trainedX, o.signal);
  const { prevalence, allNegative } = testPrevalence(joined);
  let skipped = 0;
  for (const c of trainedX) for (const v of VARIANTS) skipped += c.predictions.test[v].failed.length;
  const result: CrossDatasetResult = {
    name: spec.name,
    dataset: spec.dataset,
    root: spec.root,
    chexmask: spec.chexmask,
    cache: spec.cache,
    thresholdsFrom: 'training dataset validation split',
    counts: { test: data.rows },
    testPrevalence: prevalence,
    allNegativeMeanLabelAccuracy: allNegative,
    skippedImages: { predictions: skipped },
    fingerprint: data.fingerprint,
    summary: data.summary,
    models: modelIds(zs, trained),
    modelFingerprints: Object.fromEntries(modelIds(zs, trained).map((m) => [m, fingerprints[m] ?? ''])),
    // a re-scoring keeps the prediction time of the run that predicted
    seconds: o.seconds ?? before?.seconds ?? 0,
    evaluation,
    evaluatedAt: new Date().toISOString(),
  };
  writeJsonAtomic(join(dir, 'evaluation.json'), result);
  return result;
}

/** Re-scores every test dataset that has stored predictions (re-evaluation with other metric settings). */
export async function rescoreTestDatasets(
  runDir: string,
  config: ExperimentConfig,
  sd: SplitData,
  zs: ZeroShotResult | null,
  trained: CellResult[],
  signal?: StopSignal,
): Promise<Record<string, CrossDatasetResult>> {
  const out: Record<string, CrossDatasetResult> = {};
  let fingerprints: Record<string, string> | null = null;
  for (const spec of testDatasets(config)) {
    const done = readJson<CrossDatasetResult>(join(crossDir(runDir, spec.name), 'evaluation.json'));
    // predictions of another dataset spec under this name are not this one's
    if (!done || !sameSpec(done, spec)) continue;
    fingerprints ??= modelFingerprints(runDir, config, zs, trained);
    out[spec.name] = await scoreTestDataset(runDir, config, spec, sd, zs, trained, {
      fingerprints,
      ...(signal ? { signal } : {}),
    });
  }
  return out;
}
