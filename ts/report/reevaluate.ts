/**
 * `reevaluate`: a finished (or partly finished) run scored again from its stored predictions, with
 * other metric settings if asked; results.json and the reports are rewritten, nothing is trained.
 */

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { readJson } from '../common/io.js';
import type { Backend, CacheLike } from '../experiment/backend.js';
import { checkCellConfigs } from '../experiment/cell-config.js';
import {
  type CellResult,
  plannedCells,
  type SplitData,
  splitData,
  type ZeroShotResult,
} from '../experiment/cells.js';
import { type ExperimentConfig, parseConfig } from '../experiment/config.js';
import { rescoreTestDatasets } from '../experiment/cross-dataset.js';
import { type MetricOverrides, readEvalOverrides, writeEvalOverrides } from '../experiment/eval-settings.js';
import { checkSameData, dataFingerprint } from '../experiment/fingerprint.js';
import { readGridAttribution } from '../experiment/grid-attribution.js';
import type { Results } from '../experiment/results.js';
import type { RunResult } from '../experiment/results-assembly.js';
import { assembleResults } from '../experiment/results-assembly.js';
import { recordedCacheDir } from '../experiment/run-folder.js';
import { lockRun } from '../experiment/run-lock.js';
import { checkCellResult, checkZeroShotResult } from '../experiment/stored-predictions.js';
import { readRunData } from '../model/run-files.js';
import { modelChange, runModel } from '../model/run-model.js';
import { readEarlierResults } from './earlier-facts.js';
import { publishResults } from './publish.js';
import { table2Markdown } from './tables.js';

/**
 * Re-evaluate a finished (or partly finished) run from its stored predictions, optionally with other
 * metric settings (threshold rule, bootstrap, primary metric); rewrites results.json and the reports.
 * Only the cells config.json plans are scored (`ignored` lists the other finished cells on disk).
 * @throws {Error} (rejects) `runDir` has no config.json, or no finished planned cell (zeroshot.json or a
 *   cell's result.json).
 * @throws {ConfigError} (rejects) the saved config with `metricOverrides` does not validate.
 * @throws {DataError} (rejects) the cache cannot be opened (the backend's openCache), or its data
 *   differ from what the run recorded in data.json (reason `data-changed`, naming what changed), or a
 *   run fact kept from the old results.json has the wrong shape (reason `bad-results`, naming the field).
 * @throws {InterruptedError} (rejects) `signal` was stopped while scoring; nothing was written.
 */
export async function reevaluate(
  runDir: string,
  backend: Backend,
  metricOverrides: MetricOverrides = {},
  signal?: StopSignal,
): Promise<Reevaluation> {
  const started = new Date();
  if (!existsSync(join(runDir, 'config.json')))
    throw new ConfigError(`${runDir} is not a run folder (no config.json)`);
  const lock = await lockRun(runDir);
  try {
    return await reevaluateLocked(runDir, backend, metricOverrides, started, signal);
  } finally {
    lock.release();
  }
}

/** A re-evaluated run, and the cells its config plans that have no result yet (a partly finished run). */
export interface Reevaluation extends RunResult {
  /** Planned cell ids ('zeroshot', 'lp-original-s1', …) without zeroshot.json / result.json, in plan order. */
  missing: string[];
  /** Cells with a result on disk that the config does not plan (e.g. seeds taken out of config.json): not scored. */
  ignored: string[];
}

/** The stored results of the planned cells: zeroshot.json and each cell's result.json (with its file and id). */
interface FinishedCells {
  zs: ZeroShotResult | null;
  trained: CellResult[];
  resultFiles: { file: string; id: string }[];
  /** Finished cells on disk outside the plan, sorted. */
  ignored: string[];
}

/** Only the cells the config plans are scored, as `run --resume` does: Table 2's seeds are the config's. */
function readFinishedCells(runDir: string, planned: string[]): FinishedCells {
  const cellsDir = join(runDir, 'cells');
  const plan = new Set(planned);
  const ignored: string[] = [];
  const zsFile = join(cellsDir, 'zeroshot.json');
  let zs: ZeroShotResult | null = null;
  if (plan.has('zeroshot')) zs = readJson<ZeroShotResult>(zsFile);
  else if (existsSync(zsFile)) ignored.push('zeroshot');
  const trained: CellResult[] = [];
  const resultFiles: { file: string; id: string }[] = [];
  if (existsSync(cellsDir)) {
    for (const d of readdirSync(cellsDir).sort()) {
      const file = join(cellsDir, d, 'result.json');
      if (!plan.has(d)) {
        if (existsSync(file)) ignored.push(d);
        continue;
      }
      const c = readJson<CellResult>(file);
      if (c) {
        trained.push(c);
        resultFiles.push({ file, id: d });
      }
    }
  }
  if (!zs && trained.length === 0)
    throw new Error(
      `${runDir} has no finished cells to evaluate${ignored.length ? ` among those config.json plans (not planned: ${ignored.join(', ')})` : ''}`,
    );
  return { zs, trained, resultFiles, ignored };
}

/**
 * The new scores with the facts of the original run kept (timings, commit, data summaries,
 * attribution, segmenter quality), the re-evaluation noted, and the test datasets rescored.
 */
async function withEarlierFacts(
  results: Results,
  runDir: string,
  config: ExperimentConfig,
  overrides: MetricOverrides,
  cells: FinishedCells,
  sd: SplitData,
  signal: StopSignal | undefined,
): Promise<Results> {
  const before = readEarlierResults(runDir);
  if (before) {
    // the folder evaluated now, wherever the run was when it wrote the file
    results.run = { ...results.run, ...before.run, dir: runDir, reevaluatedAt: new Date().toISOString() };
    results.data = { ...before.data, ...results.data };
  }
  delete results.run.evaluationOverrides;
  if (Object.keys(overrides).length) results.run.evaluationOverrides = overrides;
  const attribution = readGridAttribution(runDir);
  if (attribution) results.attribution = attribution;
  if (before?.segmenter) results.segmenter = before.segmenter;
  const tested = await rescoreTestDatasets(runDir, config, sd, cells.zs, cells.trained, signal);
  if (Object.keys(tested).length) results.testDatasets = tested;
  return results;
}

async function reevaluateLocked(
  runDir: string,
  backend: Backend,
  metricOverrides: MetricOverrides,
  started: Date,
  signal: StopSignal | undefined,
): Promise<Reevaluation> {
  const saved = readJson<ExperimentConfig>(join(runDir, 'config.json'));
  if (!saved) throw new ConfigError(`${runDir} is not a run folder (no config.json)`);
  // earlier evals' overrides still apply; config.json keeps the training-time settings
  const overrides = { ...readEvalOverrides(runDir), ...metricOverrides };
  const config = parseConfig(
    { ...saved, metrics: { ...saved.metrics, ...overrides } },
    `${runDir}/config.json + eval-settings.json`,
  );
  const cells = readFinishedCells(runDir, plannedCells(config));
  const { zs, trained, resultFiles } = cells;
  // the settings the cells were computed with, before this evaluation's metric overrides
  checkCellConfigs(
    runDir,
    parseConfig(saved, `${runDir}/config.json`),
    [...(zs ? ['zeroshot'] : []), ...resultFiles.map((f) => f.id)],
    `re-evaluate ${runDir}`,
  );
  const recorded = readRunData(runDir);
  // Nothing here is computed from the model (stored predictions only), so another model in model.dir
  // is not refused; but a cell served from this run would load it as its encoder: say so.
  const modelNow = recorded?.model ? modelChange(recorded.model, runModel(config.model.dir)) : null;
  if (modelNow)
    process.emitWarning(
      `${runDir}: ${modelNow}. eval scores the stored predictions the recorded model made; serving or resuming this run needs that model back`,
      { code: 'CXRMASK_MODEL_CHANGED' },
    );
  const cache: CacheLike = await backend.openCache(recordedCacheDir(recorded) ?? config.data.cache);
  // Shard handles are released however re-evaluation ends.
  try {
    const fingerprint = dataFingerprint(cache);
    // stored predictions are scored against the cache's labels: they must be the labels they were made for
    if (recorded) checkSameData(runDir, recorded, fingerprint, `re-evaluate ${runDir}`);
    const sd = await splitData(cache);
    // stored predictions must fit the rows they are scored against
    if (zs) checkZeroShotResult(join(runDir, 'cells', 'zeroshot.json'), zs, sd);
    for (const [i, c] of trained.entries()) checkCellResult(resultFiles[i]!.file, c, resultFiles[i]!.id, sd);
    const device = trained[0]?.device ?? backend.resolveDevice(config.model.device);
    const scored = await assembleResults({
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
      ...(signal ? { signal } : {}),
    });
    const results = await withEarlierFacts(scored, runDir, config, overrides, cells, sd, signal);
    if (Object.keys(overrides).length) writeEvalOverrides(runDir, overrides);
    await publishResults(runDir, results, { cache });
    const scoredIds = new Set([...(zs ? ['zeroshot'] : []), ...resultFiles.map((f) => f.id)]);
    const missing = plannedCells(config).filter((id) => !scoredIds.has(id));
    return { runDir, results, missing, ignored: cells.ignored };
  } finally {
    cache.close?.();
  }
}

/** What `cxrmask eval` prints: Table 2, what it rewrote, and the planned cells that have no result yet. */
export function evalSummary({ runDir, results, missing, ignored }: Reevaluation): string {
  const out = [table2Markdown(results), `Rewrote ${runDir}/results.json and reports.`];
  if (ignored.length)
    out.push(
      `Not scored, not planned by config.json (${ignored.length} finished cell${ignored.length === 1 ? '' : 's'} on disk): ${ignored.join(', ')}.`,
    );
  if (missing.length)
    out.push(
      `Not scored, no result yet (${missing.length} planned cell${missing.length === 1 ? '' : 's'}): ${missing.join(', ')}. ` +
        `Rows marked (k/n seeds) are over the seeds they have; \`cxrmask run --resume ${runDir}\` computes the rest.`,
    );
  return `${out.join('\n')}\n`;
}
