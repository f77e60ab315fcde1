/**
 * `runExperiment`: a new run folder (never reusing an old one) or `resume` of an existing one, the
 * whole grid, then results.json + the reports. Library entry point behind `cxrmask run` / `demo`.
 * The folder and its lock are run-folder.ts; results.json is put together in assemble.ts; a second
 * scoring of stored predictions is reevaluate.ts.
 */

import { join } from 'node:path';
import { ConfigError, DataError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { writeJsonAtomic } from '../common/io.js';
import { NUM_LABELS } from '../common/labels.js';
import type { Backend, CacheLike } from '../experiment/backend.js';
import {
  type CellResult,
  cellId,
  finishedCells,
  plannedCells,
  type SplitData,
  trainedCells,
  type ZeroShotResult,
} from '../experiment/cells.js';
import type { ExperimentConfig } from '../experiment/config.js';
import {
  checkTestDatasets,
  crossDatasetEvaluations,
  type PrepareTestData,
  testDatasets,
} from '../experiment/cross-dataset.js';
import { readEvalOverrides, withMetricOverrides } from '../experiment/eval-settings.js';
import { checkSameData, dataFingerprint, writeRunData } from '../experiment/fingerprint.js';
import { Grid, type GridEvent } from '../experiment/grid.js';
import { gridAttribution } from '../experiment/grid-attribution.js';
import type { Results } from '../experiment/results.js';
import { assembleResults, cacheFacts, type RunResult } from '../experiment/results-assembly.js';
import {
  claimRunFolder,
  recordedCacheDir,
  resumedConfig,
  withAbsoluteModelDir,
} from '../experiment/run-folder.js';
import type { RunLock } from '../experiment/run-lock.js';
import { segmenterQuality } from '../experiment/segmenter-quality.js';
import type { ResolvedPreprocess } from '../images/preprocess.js';
import { type GroupLike, ROOT_WORK_TIMEOUT_MS } from '../model/process-group.js';
import { RUN_DATA_FILE, type RunData, type RunModel, readRunData } from '../model/run-files.js';
import { modelChange, runModel } from '../model/run-model.js';
import { publishResults } from '../report/publish.js';
import { runCellsOnDevices } from './devices.js';

/** What `runExperiment` runs, with what, and whom it tells. */
export interface RunOptions {
  config: ExperimentConfig;
  backend: Backend;
  /** Resume this run folder (its saved config wins over `config`). */
  resume?: string | null;
  signal?: StopSignal;
  /** Called with each progress event. */
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
  /** Several devices: independent cells run side by side, one process per device (distributed/devices.ts); one: the run's device. Not with `dist`. */
  devices?: readonly string[];
  /** Builds or opens a test dataset's cache (config.test.datasets); default: open its `cache` folder as is. */
  prepareTestData?: PrepareTestData;
}

/**
 * Runs the grid (zero-shot, then every LP/JFT cell) in a new run folder, or resumes `o.resume`, and
 * writes results.json and the reports. Finished cells are skipped; an unfinished one restarts from its
 * last epoch checkpoint.
 * @throws {Error} (rejects) `o.resume` has no config.json.
 * @throws {ConfigError} (rejects) the resumed folder's config.json does not validate; `o.devices`
 *   given with `o.dist`.
 * @throws {DataError} (rejects) the cache cannot be opened; on resume, its data differ from data.json
 *   (`data-changed`), or model.dir holds another model than data.json recorded (`model-changed`); a
 *   cell's training split has more unreadable images than `maxUnreadableShare`
 *   (`unreadable-training-images`).
 * @throws {InterruptedError} (rejects) `o.signal` asked to stop; the run can be resumed.
 * @throws {NativeError} (rejects) a model op fails (see ts/model).
 */
export async function runExperiment(o: RunOptions): Promise<RunResult> {
  if (o.dist && o.devices)
    throw new ConfigError(
      'devices and dist do not combine: every rank would train every cell (cells side by side, or each cell on the whole group)',
    );
  // one device is where the whole run goes
  if (o.devices?.length === 1) {
    const { devices, ...rest } = o;
    o = { ...rest, device: devices[0]! };
  }
  const started = new Date();
  const resumed = !!o.resume;
  const root = !o.dist || o.dist.rank === 0;
  // a new run saves model.dir absolute: a resume from another working directory opens the same folder
  const fresh = resumed ? o.config : withAbsoluteModelDir(o.config);
  const { runDir, lock } = await claimRunFolder(fresh, o.resume, o.dist);
  try {
    // a resumed run goes on with the config it saved
    const config = resumed ? resumedConfig(runDir) : fresh;
    if (lock?.tookOver)
      o.onEvent?.({ kind: 'phase', name: 'stale lock removed', detail: `${lock.path}: ${lock.tookOver}` });
    return await runInFolder(o, config, runDir, started, resumed, root, lock);
  } finally {
    lock?.release();
  }
}

/**
 * The model a run is tied to (model.json and weights of model.dir, hashed). Its features, zero-shot
 * predictions and cells all come from it, so a resume whose model folder now holds another model is
 * refused before anything is computed. A run recorded before the model was cannot be checked: a
 * warning, and fixRunData records the model from this resume on.
 * @throws {DataError} `model-changed`, naming the folder and both fingerprints.
 */
function fixRunModel(
  config: ExperimentConfig,
  runDir: string,
  recorded: RunData | null,
  resumed: boolean,
  root: boolean,
): RunModel {
  const now = runModel(config.model.dir);
  if (!resumed) return now;
  const change = recorded?.model ? modelChange(recorded.model, now) : null;
  if (change)
    throw new DataError(
      'model-changed',
      `cannot resume ${runDir}: ${change} (recorded ${recorded!.recordedAt}). Its features, zero-shot predictions and trained cells come from the recorded model; restore that model folder, or start a new run`,
      { file: join(runDir, RUN_DATA_FILE) },
    );
  if (!recorded?.model && root)
    process.emitWarning(
      `${runDir}: the run started before runs recorded their model (no model in ${RUN_DATA_FILE}), so the model folder ${now.dir} cannot be checked against the one its finished cells were computed with; it is recorded now and checked on later resumes`,
      { code: 'CXRMASK_MODEL_UNRECORDED' },
    );
  return now;
}

/**
 * The data facts a run is tied to: recorded in data.json when it starts (rank 0), checked against
 * the cache before a resume does anything. Returns what results.json shows under data.
 */
function fixRunData(
  o: RunOptions,
  runDir: string,
  cache: CacheLike,
  recorded: RunData | null,
  model: RunModel,
  root: boolean,
): { fingerprint: ReturnType<typeof dataFingerprint>; summaries: Record<string, unknown> } {
  const fingerprint = dataFingerprint(cache);
  if (recorded) checkSameData(runDir, recorded, fingerprint, `resume ${runDir}`);
  const summaries: Record<string, unknown> = { ...(recorded?.summaries ?? {}), ...(o.extra ?? {}) };
  // the data step's summary of the cache (o.extra) has no contour settings: the cache's own facts fill
  // them in, so that a cell served after the cache is deleted still draws the contours it trained on
  // the folder absolute, as in the fingerprint: the data step's summary has it as typed (relative)
  summaries['cache'] = {
    ...cacheFacts(cache),
    ...(summaries['cache'] as Record<string, unknown> | undefined),
    ...(fingerprint.cacheDir ? { dir: fingerprint.cacheDir } : {}),
  };
  if (!recorded && root) writeRunData(runDir, fingerprint, summaries, model);
  // a run recorded before the model was: checked from now on
  else if (recorded && !recorded.model && root)
    writeJsonAtomic(join(runDir, RUN_DATA_FILE), { ...recorded, model } satisfies RunData);
  return { fingerprint, summaries };
}

/**
 * Zero-shot, then every trained cell. With several devices the unfinished cells first run side by
 * side, one process per device; then every cell is read back (or, on one device, trained) in order.
 */
async function trainModels(
  o: RunOptions,
  config: ExperimentConfig,
  grid: Grid,
  runDir: string,
  cacheDir: string,
  lock: RunLock | null,
): Promise<{ zs: ZeroShotResult | null; trained: CellResult[] }> {
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
      ...(o.signal ? { signal: o.signal } : {}),
      cells: trainedCells(config)
        .map((c) => cellId(c.setup, c.train, c.seed))
        .filter((id) => !done.has(id)),
      // in run.lock: a resume after this process is killed waits for them (run-lock.ts)
      onWorkers: (pids) => lock?.setWorkers(pids),
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
  return { zs, trained };
}

/** Attribution of every trained model on the test images with a positive finding (rank 0 alone). */
function measureAttribution(
  o: RunOptions,
  config: ExperimentConfig,
  runDir: string,
  cache: CacheLike,
  grid: Grid,
  sd: SplitData,
) {
  return gridAttribution({
    config,
    runDir,
    cache,
    testRows: sd.test.filter((i) =>
      sd.labels.subarray(i * NUM_LABELS, (i + 1) * NUM_LABELS).some((v) => v === 1),
    ),
    device: grid.device,
    bf16: grid.bf16,
    cells: trainedCells(config).map((c) => ({ id: cellId(c.setup, c.train, c.seed) })),
    ...(config.data.root ? { imageRoot: config.data.root } : {}),
    backend: o.backend,
  });
}

/**
 * Every model on each test dataset of config.test (prediction only, nothing to train); a failure
 * says that the trained cells are kept (afterTraining).
 */
function testOnDatasets(
  o: RunOptions,
  scoring: ExperimentConfig,
  runDir: string,
  grid: Grid,
  sd: SplitData,
  models: { zs: ZeroShotResult | null; trained: CellResult[] },
  preprocess: ResolvedPreprocess | undefined,
) {
  o.onEvent?.({ kind: 'phase', name: 'test datasets' });
  return crossDatasetEvaluations({
    config: scoring,
    ...(preprocess ? { preprocess } : {}),
    backend: o.backend,
    runDir,
    device: grid.device,
    bf16: grid.bf16,
    sd,
    zs: models.zs,
    trained: models.trained,
    ...(o.prepareTestData ? { prepare: o.prepareTestData } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
  }).catch((e: Error) => {
    throw afterTraining(e, runDir);
  });
}

/**
 * A test dataset's failure, after every cell has trained: what the user can fix keeps its class (exit
 * 2) and says that the trained cells are kept and how to go on; anything else is passed on as it is.
 */
function afterTraining(e: Error, runDir: string): Error {
  if (!(e instanceof DataError || e instanceof ConfigError)) return e;
  // the same error (its class, reason, where, cause and stack), its message made longer
  e.message = `${e.message}. The trained cells are kept in ${runDir}: fix test.datasets in its config.json and continue with \`cxrmask run --resume ${runDir}\``;
  return e;
}

/** The test datasets' section of results.json, and their seconds among the cells' timings. */
function addTestDatasets(results: Results, tested: NonNullable<Results['testDatasets']>): void {
  results.testDatasets = tested;
  for (const [name, x] of Object.entries(tested)) results.run.timings.cells[`test:${name}`] = x.seconds;
}

async function runInFolder(
  o: RunOptions,
  config: ExperimentConfig,
  runDir: string,
  started: Date,
  resumed: boolean,
  root: boolean,
  lock: RunLock | null,
): Promise<RunResult> {
  o.onRunDir?.(runDir);
  if (root) await checkTestDatasets(config, runDir);
  if (config.model.threads && o.backend.setThreads) o.backend.setThreads(config.model.threads);
  const recorded = resumed ? readRunData(runDir) : null;
  const model = fixRunModel(config, runDir, recorded, resumed, root);
  const cacheDir = o.cacheDir ?? recordedCacheDir(recorded) ?? config.data.cache;
  const cache = await o.backend.openCache(cacheDir);
  // Shard file handles are released however the run ends (done, interrupted, failed).
  try {
    const { fingerprint, summaries } = fixRunData(o, runDir, cache, recorded, model, root);
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
    const models = await trainModels(o, config, grid, runDir, cacheDir, lock);
    const sd = await grid.sd;
    if (config.attribution.enabled && root) o.onEvent?.({ kind: 'phase', name: 'attribution' });
    // Rank 0 alone measures and writes attribution (the other ranks hold the same weights).
    const attribution = root ? await measureAttribution(o, config, runDir, cache, grid, sd) : null;
    // scored with the metric settings of the run's latest `eval`, if any (training used config.json's)
    const evalOverrides = resumed ? readEvalOverrides(runDir) : {};
    const scoring = withMetricOverrides(config, evalOverrides);
    const tested =
      root && config.test.datasets.length
        ? await testOnDatasets(o, scoring, runDir, grid, sd, models, cache.preprocess)
        : null;
    o.onEvent?.({ kind: 'phase', name: 'evaluate' });
    const results = await assembleResults({
      config: scoring,
      runDir,
      started,
      resumed,
      backend: o.backend,
      device: grid.device,
      sd,
      ...models,
      cache,
      fingerprint,
      extra: summaries,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    if (attribution) results.attribution = attribution;
    if (Object.keys(evalOverrides).length) results.run.evaluationOverrides = evalOverrides;
    // rank 0 alone: the segmenter's masks of the test images, scored against CheXmask's
    const predicted = root ? grid.ensurePredicted() : null;
    if (predicted && config.segmenter)
      results.segmenter = await segmenterQuality(config.segmenter, cache, await predicted, sd.test, o.signal);
    if (tested) addTestDatasets(results, tested);
    if (root) {
      o.onEvent?.({ kind: 'phase', name: 'report' });
      await publishResults(runDir, results, { cache });
    }
    // rank 0 alone measures attribution and writes the reports meanwhile
    await o.dist?.barrier(root ? undefined : ROOT_WORK_TIMEOUT_MS);
    return { runDir, results };
  } finally {
    cache.close?.();
  }
}
