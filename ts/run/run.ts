/**
 * `runExperiment`: a new run folder (never reusing an old one) or `resume` of an existing one, the
 * whole grid, then results.json + the reports. Library entry point behind `cxrmask run` / `demo`.
 */

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StopSignal } from '../common/interrupt.js';
import { readJson, writeJsonAtomic } from '../common/io.js';
import { NUM_LABELS } from '../common/labels.js';
import { packageVersion } from '../common/version.js';
import { runCellsOnDevices } from '../distributed/devices.js';
import type { Backend, CacheLike } from '../experiment/backend.js';
import { checkCellConfigs } from '../experiment/cell-config.js';
import {
  type CellResult,
  cellId,
  finishedCells,
  plannedCells,
  type SplitData,
  splitData,
  trainedCells,
  type ZeroShotResult,
} from '../experiment/cells.js';
import { type ExperimentConfig, parseConfig, VARIANTS } from '../experiment/config.js';
import {
  checkTestDatasets,
  crossDatasetEvaluations,
  type PrepareTestData,
  rescoreTestDatasets,
  testDatasets,
} from '../experiment/cross-dataset.js';
import {
  type MetricOverrides,
  readEvalOverrides,
  withMetricOverrides,
  writeEvalOverrides,
} from '../experiment/eval-settings.js';
import { evaluate, testPrevalence } from '../experiment/evaluate.js';
import {
  checkSameData,
  type DataFingerprint,
  dataFingerprint,
  type RunData,
  readRunData,
  writeRunData,
} from '../experiment/fingerprint.js';
import { Grid, type GridEvent } from '../experiment/grid.js';
import { gridAttribution, readGridAttribution } from '../experiment/grid-attribution.js';
import type { Results } from '../experiment/results.js';
import { lockRun, type RunLock } from '../experiment/run-lock.js';
import { segmenterQuality } from '../experiment/segmenter-quality.js';
import { checkCellResult, checkZeroShotResult } from '../experiment/stored-predictions.js';
import { readModelMeta } from '../model/meta.js';
import { broadcastString, type GroupLike, ROOT_WORK_TIMEOUT_MS } from '../model/process-group.js';
import { writeReports } from '../report/index.js';

export type { Results };

export interface RunOptions {
  config: ExperimentConfig;
  backend: Backend;
  /** Resume this run folder (its saved config wins over `config`). */
  resume?: string | null;
  signal?: StopSignal;
  onEvent?: (e: GridEvent) => void;
  /** Called with the run folder as soon as it exists. */
  onRunDir?: (dir: string) => void;
  /** Extra facts recorded in results.json (e.g. cache summary, skipped images). */
  extra?: Record<string, unknown>;
  /** The keyed cache folder the data step opened or built (default: the recorded one on resume, else config.data.cache). */
  cacheDir?: string | null;
  /**
   * Data parallel (ts/distributed): every rank calls runExperiment; rank 0 picks the run folder and
   * alone writes config, data facts, results and reports; each cell trains on the whole group.
   */
  dist?: GroupLike;
  /** This process's device (e.g. cuda:LOCAL_RANK under a launcher); default config.model.device. */
  device?: string;
  /** Several devices: independent cells run side by side, one process per device (distributed/devices.ts). */
  devices?: readonly string[];
  /** Builds or opens a test dataset's cache (config.test.datasets); default: open its `cache` folder as is. */
  prepareTestData?: PrepareTestData;
}

export interface RunResult {
  runDir: string;
  results: Results;
}

export const DEFINITIONS: Record<string, string> = {
  meanLabelAccuracy:
    "The paper's 'accuracy averaged across the five findings': for each finding k, acc_k = fraction of test images (label not ignored) whose thresholded prediction 1[p_k >= t_k] equals the label; the mean of acc_k over the five findings.",
  thresholds:
    "Per-finding thresholds are chosen on the validation split of the same test variant (original or masked). Accuracy metrics (meanLabelAccuracy, exactMatch) use t_k from config.metrics.thresholdRule (default accuracy: the threshold maximising that finding's validation accuracy); sensitivity, specificity and F1 use the operating point o_k from config.metrics.operatingPointRule (default youden: max sensitivity+specificity-1). Other rules: f1, fixed (config.metrics.fixedThreshold). Candidates are midpoints between distinct validation scores; ties go to the threshold closest to 0.5; a finding with one class on validation gets 0.5.",
  exactMatch:
    'Fraction of test images whose thresholded predictions match the labels on every non-ignored finding.',
  macroAUROC:
    'Mean over findings of ROC AUC (Mann-Whitney, mid-ranks for ties); a finding with only one class among its non-ignored test labels has AUROC undefined (null) and is left out of the mean.',
  sensitivity:
    'TP/(TP+FN) at the operating point o_k; specificity TN/(TN+FP); F1 2TP/(2TP+FP+FN); null when the denominator is 0.',
  top1Accuracy:
    '5-way top-1 accuracy: over test images with exactly one positive finding (and no ignored label), the fraction whose highest-scoring finding is the positive one (chance 0.2).',
  difference:
    'masked - original on the test split for the same trained models (mean over seeds); 95% CI by paired bootstrap over test images (the same resampled images for both variants and all seeds).',
  zeroshotPerFinding:
    'P(k) = softmax over {positive prompt, negative prompt} of exp(logit_scale)*cosine(image, text), first component; without a negative prompt, sigmoid of the scaled cosine.',
  zeroshotSoftmax5: 'P = softmax over the five positive prompts of exp(logit_scale)*cosine(image, text).',
  aggregation: 'mean ± sample sd (n-1) over seeds; zero-shot is deterministic (one run).',
};

function timestamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\..+$/, '').replace('T', '-');
}

/** A fresh folder `<runsDir>/<timestamp>[-name][-k]`; never an existing one. */
export function newRunDir(runsDir: string, name: string): string {
  mkdirSync(runsDir, { recursive: true });
  const base = join(runsDir, `${timestamp()}${name ? `-${name}` : ''}`);
  let dir = base;
  for (let k = 2; existsSync(dir); k++) dir = `${base}-${k}`;
  mkdirSync(dir);
  return dir;
}

const here = dirname(fileURLToPath(import.meta.url));

export function gitInfo(): { commit: string | null; dirty: boolean | null } {
  try {
    const cwd = resolve(here, '..', '..');
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    const dirty =
      execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
        cwd,
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .toString()
        .trim().length > 0;
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: null };
  }
}

/**
 * Re-evaluate a finished (or partly finished) run from its stored predictions, optionally with other
 * metric settings (threshold rule, bootstrap, primary metric); rewrites results.json and the reports.
 * @throws {Error} (rejects) `runDir` has no config.json, or no finished cell (zeroshot.json or a cell's
 *   result.json).
 * @throws {ConfigError} (rejects) the saved config with `metricOverrides` does not validate.
 * @throws {DataError} (rejects) the cache cannot be opened (the backend's openCache), or its data
 *   differ from what the run recorded in data.json (reason `data-changed`, naming what changed).
 */
export async function reevaluate(
  runDir: string,
  backend: Backend,
  metricOverrides: MetricOverrides = {},
): Promise<RunResult> {
  const started = new Date();
  if (!existsSync(join(runDir, 'config.json')))
    throw new Error(`${runDir} is not a run folder (no config.json)`);
  const lock = lockRun(runDir);
  try {
    return await reevaluateLocked(runDir, backend, metricOverrides, started);
  } finally {
    lock.release();
  }
}

async function reevaluateLocked(
  runDir: string,
  backend: Backend,
  metricOverrides: MetricOverrides,
  started: Date,
): Promise<RunResult> {
  const saved = readJson<ExperimentConfig>(join(runDir, 'config.json'));
  if (!saved) throw new Error(`${runDir} is not a run folder (no config.json)`);
  // earlier evals' overrides still apply; config.json keeps the training-time settings
  const overrides = { ...readEvalOverrides(runDir), ...metricOverrides };
  const config = parseConfig(
    { ...saved, metrics: { ...saved.metrics, ...overrides } },
    `${runDir}/config.json + eval-settings.json`,
  );
  const zs = readJson<ZeroShotResult>(join(runDir, 'cells', 'zeroshot.json'));
  const trained: CellResult[] = [];
  const resultFiles: { file: string; id: string }[] = [];
  const cellsDir = join(runDir, 'cells');
  if (existsSync(cellsDir)) {
    for (const d of readdirSync(cellsDir).sort()) {
      const c = readJson<CellResult>(join(cellsDir, d, 'result.json'));
      if (c) {
        trained.push(c);
        resultFiles.push({ file: join(cellsDir, d, 'result.json'), id: d });
      }
    }
  }
  if (!zs && trained.length === 0) throw new Error(`${runDir} has no finished cells to evaluate`);
  // the settings the cells were computed with, before this evaluation's metric overrides
  checkCellConfigs(
    runDir,
    parseConfig(saved, `${runDir}/config.json`),
    [...(zs ? ['zeroshot'] : []), ...resultFiles.map((f) => f.id)],
    `re-evaluate ${runDir}`,
  );
  const recorded = readRunData(runDir);
  const cache = await backend.openCache(recordedCacheDir(recorded) ?? config.data.cache);
  // Shard handles are released however re-evaluation ends.
  try {
    const fingerprint = dataFingerprint(cache);
    // stored predictions are scored against the cache's labels: they must be the labels they were made for
    if (recorded) checkSameData(runDir, recorded, fingerprint, `re-evaluate ${runDir}`);
    const sd = await splitData(cache);
    // stored predictions must fit the rows they are scored against
    if (zs) checkZeroShotResult(join(cellsDir, 'zeroshot.json'), zs, sd);
    for (const [i, c] of trained.entries()) checkCellResult(resultFiles[i]!.file, c, resultFiles[i]!.id, sd);
    const device = trained[0]?.device ?? backend.resolveDevice(config.model.device);
    const results = assembleResults({
      config,
      runDir,
      started,
      resumed: true,
      backend,
      device,
      sd,
      zs,
      trained,
      cache,
      fingerprint,
      extra: recorded?.summaries,
    });
    // keep the facts of the original run (timings, commit, data summaries); note the re-evaluation
    const before = readJson<Results>(join(runDir, 'results.json'));
    if (before) {
      results.run = { ...results.run, ...before.run, reevaluatedAt: new Date().toISOString() };
      results.data = { ...before.data, ...results.data };
    }
    delete results.run.evaluationOverrides;
    if (Object.keys(overrides).length) results.run.evaluationOverrides = overrides;
    const attribution = readGridAttribution(runDir);
    if (attribution) results.attribution = attribution;
    if (before?.segmenter) results.segmenter = before.segmenter;
    const tested = rescoreTestDatasets(runDir, config, sd, zs, trained);
    if (Object.keys(tested).length) results.testDatasets = tested;
    if (Object.keys(overrides).length) writeEvalOverrides(runDir, overrides);
    writeJsonAtomic(join(runDir, 'results.json'), results);
    await writeReports(runDir, results, { cache });
    return { runDir, results };
  } finally {
    cache.close?.();
  }
}

/** The recorded keyed cache folder when it still exists (the config may name a parent holding several). */
function recordedCacheDir(recorded: RunData | null): string | null {
  const dir = recorded?.fingerprint.cacheDir;
  return dir && existsSync(dir) ? dir : null;
}

/** What results.json shows under data.cache when the data step gave no summary (e.g. a resume). */
function cacheFacts(cache: CacheLike): Record<string, unknown> {
  return {
    dir: cache.dir ?? null,
    key: cache.key ?? null,
    entries: cache.entries.length,
    skipped: cache.skipped ?? null,
  };
}

/** The model.json fields results.json records; null when the folder has none (e.g. a fake backend). */
function modelFacts(dir: string): Record<string, unknown> | null {
  if (!existsSync(join(dir, 'model.json'))) return null;
  const m = readModelMeta(dir);
  const keep = ['preset', 'source', 'seed', 'embedDim', 'imageSize', 'contextLength', 'torchVersion'];
  return { dir, ...Object.fromEntries(keep.filter((k) => k in m).map((k) => [k, m[k]])) };
}

/**
 * Runs the grid (zero-shot, then every LP/JFT cell) in a new run folder, or resumes `o.resume`, and
 * writes results.json and the reports. Finished cells are skipped; an unfinished one restarts from its
 * last epoch checkpoint.
 * @throws {Error} (rejects) `o.resume` has no config.json.
 * @throws {ConfigError} (rejects) the resumed folder's config.json does not validate.
 * @throws {DataError} (rejects) the cache cannot be opened; on resume, its data differ from data.json
 *   (`data-changed`); a cell's training split has more unreadable images than `maxUnreadableShare`
 *   (`unreadable-training-images`).
 * @throws {InterruptedError} (rejects) `o.signal` asked to stop; the run can be resumed.
 * @throws {NativeError} (rejects) a model op fails (see ts/model).
 */
export async function runExperiment(o: RunOptions): Promise<RunResult> {
  const started = new Date();
  let config = o.config;
  let runDir: string;
  const resumed = !!o.resume;
  const root = !o.dist || o.dist.rank === 0;
  // rank 0 holds the folder's lock for the group (the others run under its barriers)
  let lock: RunLock | null = null;
  if (o.resume) {
    runDir = o.resume;
    if (!existsSync(join(runDir, 'config.json')))
      throw new Error(`cannot resume ${runDir}: no config.json there`);
    if (root) lock = lockRun(runDir);
  } else if (o.dist && o.dist.rank !== 0) {
    // the folder rank 0 created (names carry a timestamp, so each rank would pick its own)
    runDir = await broadcastString(o.dist, '');
  } else {
    runDir = newRunDir(config.runsDir, config.name);
    lock = lockRun(runDir);
    writeJsonAtomic(join(runDir, 'config.json'), config);
    if (o.dist) await broadcastString(o.dist, runDir);
  }
  try {
    if (o.resume) {
      const saved = readJson<unknown>(join(runDir, 'config.json'));
      if (!saved) throw new Error(`cannot resume ${runDir}: no config.json there`);
      config = parseConfig(saved, `${runDir}/config.json`);
      // every cell already started was computed with the settings it recorded
      checkCellConfigs(runDir, config, plannedCells(config), `resume ${runDir}`);
    }
    if (lock?.tookOver)
      o.onEvent?.({ kind: 'phase', name: 'stale lock removed', detail: `${lock.path}: ${lock.tookOver}` });
    return await runInFolder(o, config, runDir, started, resumed, root);
  } finally {
    lock?.release();
  }
}

async function runInFolder(
  o: RunOptions,
  config: ExperimentConfig,
  runDir: string,
  started: Date,
  resumed: boolean,
  root: boolean,
): Promise<RunResult> {
  o.onRunDir?.(runDir);
  if (root) checkTestDatasets(config, runDir);
  if (config.model.threads && o.backend.setThreads) o.backend.setThreads(config.model.threads);
  const recorded = resumed ? readRunData(runDir) : null;
  const cacheDir = o.cacheDir ?? recordedCacheDir(recorded) ?? config.data.cache;
  const cache = await o.backend.openCache(cacheDir);
  // the data are fixed for the life of a run: recorded when it starts, checked before a resume does anything
  // Shard file handles are released however the run ends (done, interrupted, failed).
  try {
    const fingerprint = dataFingerprint(cache);
    if (recorded) checkSameData(runDir, recorded, fingerprint, `resume ${runDir}`);
    const summaries = {
      cache: cacheFacts(cache),
      ...(recorded?.summaries ?? {}),
      ...(o.extra ?? {}),
    };
    if (!recorded && root) writeRunData(runDir, fingerprint, summaries);
    const grid = new Grid({
      config,
      backend: o.backend,
      runDir,
      cache,
      signal: o.signal,
      onEvent: o.onEvent,
      ...(o.dist ? { dist: o.dist } : {}),
      ...(o.device ? { device: o.device } : {}),
    });
    const plan = [...plannedCells(config), ...testDatasets(config).map((t) => `test:${t.name}`)];
    o.onEvent?.({ kind: 'phase', name: 'plan', detail: plan.join(',') });

    let zs: ZeroShotResult | null = null;
    if (config.zeroshot.enabled) zs = await grid.zeroShot();
    if (o.devices && o.devices.length > 1) {
      // linear probes read the features from disk: computed once here, before the cells fan out
      if (config.linearProbe.enabled) await grid.ensureFeatures();
      const done = finishedCells(runDir);
      await runCellsOnDevices({
        runDir,
        cacheDir,
        devices: o.devices,
        cells: trainedCells(config)
          .map((c) => cellId(c.setup, c.train, c.seed))
          .filter((id) => !done.has(id)),
        onCell: (cell, device, phase) =>
          o.onEvent?.({
            kind: 'phase',
            name: phase === 'start' ? 'cell-on-device' : 'cell-off-device',
            detail: `${cell}@${device}`,
          }),
      });
    }
    // every cell (finished ones are read back from their result.json)
    const trained: CellResult[] = [];
    for (const c of trainedCells(config)) trained.push(await grid.trainCell(c.setup, c.train, c.seed));

    const sd = await grid.sd;
    if (config.attribution.enabled && root) o.onEvent?.({ kind: 'phase', name: 'attribution' });
    // Rank 0 alone measures and writes attribution (the other ranks hold the same weights).
    const attribution = !root
      ? null
      : await gridAttribution({
          config,
          runDir,
          cache,
          testRows: sd.test.filter((i) =>
            sd.labels.subarray(i * NUM_LABELS, (i + 1) * NUM_LABELS).some((v) => v === 1),
          ),
          device: grid.device,
          cells: trainedCells(config).map((c) => ({ id: cellId(c.setup, c.train, c.seed), setup: c.setup })),
          ...(config.data.root ? { imageRoot: config.data.root } : {}),
        });

    // scored with the metric settings of the run's latest `eval`, if any (training used config.json's)
    const evalOverrides = resumed ? readEvalOverrides(runDir) : {};
    const scoring = withMetricOverrides(config, evalOverrides);
    // every model on each test dataset (rank 0 alone: prediction only, nothing to train)
    let tested: Results['testDatasets'] | null = null;
    if (root && config.test.datasets.length) {
      o.onEvent?.({ kind: 'phase', name: 'test datasets' });
      tested = await crossDatasetEvaluations({
        config: scoring,
        backend: o.backend,
        runDir,
        device: grid.device,
        bf16: grid.bf16,
        sd,
        zs,
        trained,
        ...(o.prepareTestData ? { prepare: o.prepareTestData } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.onEvent ? { onEvent: o.onEvent } : {}),
      });
    }
    o.onEvent?.({ kind: 'phase', name: 'evaluate' });
    const results = assembleResults({
      config: scoring,
      runDir,
      started,
      resumed,
      backend: o.backend,
      device: grid.device,
      sd,
      zs,
      trained,
      cache,
      fingerprint,
      extra: summaries,
    });
    if (attribution) results.attribution = attribution;
    if (Object.keys(evalOverrides).length) results.run.evaluationOverrides = evalOverrides;
    const predicted = root ? grid.ensurePredicted() : null;
    if (predicted && config.segmenter)
      results.segmenter = await segmenterQuality(config.segmenter, cache, await predicted, sd.test);
    if (tested) {
      results.testDatasets = tested;
      for (const [name, x] of Object.entries(tested)) results.run.timings.cells[`test:${name}`] = x.seconds;
    }
    if (root) {
      writeJsonAtomic(join(runDir, 'results.json'), results);
      o.onEvent?.({ kind: 'phase', name: 'report' });
      await writeReports(runDir, results, { cache });
    }
    // rank 0 alone measures attribution and writes the reports meanwhile
    await o.dist?.barrier(root ? undefined : ROOT_WORK_TIMEOUT_MS);
    return { runDir, results };
  } finally {
    cache.close?.();
  }
}

/** Scores the predictions and puts results.json together: a finished run and a re-evaluation alike. */
function assembleResults(a: {
  config: ExperimentConfig;
  runDir: string;
  started: Date;
  resumed: boolean;
  backend: Backend;
  device: string;
  sd: SplitData;
  zs: ZeroShotResult | null;
  trained: CellResult[];
  cache: CacheLike;
  fingerprint: DataFingerprint;
  extra?: Record<string, unknown>;
}): Results {
  const { sd } = a;
  const evaluation = evaluate(a.config, sd, a.zs, a.trained);
  const { prevalence, allNegative } = testPrevalence(sd);
  const featTimes: Record<string, number> = {};
  const featSkipped: Record<string, number> = {};
  for (const v of VARIANTS) {
    const m = readJson<{ seconds: number; failed: number[] }>(join(a.runDir, 'features', `${v}.json`));
    if (m) {
      featTimes[v] = m.seconds;
      featSkipped[v] = m.failed.length;
    }
  }
  let predSkipped = 0;
  for (const c of a.trained)
    predSkipped += c.predictions.test.original.failed.length + c.predictions.test.masked.failed.length;
  const cellTimes: Record<string, number> = {};
  if (a.zs) cellTimes['zeroshot'] = a.zs.seconds;
  for (const c of a.trained) cellTimes[c.id] = c.seconds;
  const finished = new Date();
  return {
    schema: 1,
    run: {
      dir: a.runDir,
      startedAt: a.started.toISOString(),
      finishedAt: finished.toISOString(),
      resumed: a.resumed,
      git: gitInfo(),
      versions: { cxrmask: packageVersion(), node: process.version, ...a.backend.versions() },
      model: modelFacts(a.config.model.dir),
      device: a.device,
      timings: {
        totalSeconds: (finished.getTime() - a.started.getTime()) / 1000,
        features: featTimes,
        cells: cellTimes,
      },
    },
    config: a.config,
    seeds: a.config.seeds,
    data: {
      counts: { train: sd.train.length, validate: sd.validate.length, test: sd.test.length },
      testPrevalence: prevalence,
      allNegativeMeanLabelAccuracy: allNegative,
      skippedImages: {
        features: featSkipped,
        predictions: predSkipped,
        cache: a.cache.skipped?.counts ?? null,
      },
      ...(a.extra ?? {}),
      fingerprint: a.fingerprint,
    },
    definitions: DEFINITIONS,
    zeroshot: a.zs
      ? { prompts: a.zs.prompts, negativePrompts: a.zs.negativePrompts, logitScale: a.zs.logitScale }
      : null,
    evaluation,
    training: a.trained.map((c) => ({ id: c.id, bestEpoch: c.bestEpoch, history: c.history })),
  };
}
