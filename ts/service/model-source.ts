/**
 * What `--model` names for the commands that serve a classifier: an exported model folder (zero-shot,
 * or with `--checkpoint`), or a trained cell of a run (`runs/<run>/cells/<cell>`, or its best.ckpt),
 * whose run config names the model folder and whose cache recorded the contour settings and the
 * preprocessing the model was trained with (so served images are resized, normalised and contoured
 * as the training ones were: a `--preset paper` cache squashes with ImageNet statistics). A
 * checkpoint given with a model folder brings its cell's settings the same way.
 *
 * A cell's head was trained on its run's encoder: the model folder it is put on must still hold the
 * model.json and weights the run recorded in data.json, else the scores would be silently wrong.
 * openModel checks that (ts/model/run-model.ts checkRunCheckpoint) for every caller, hashing the
 * weights once (under a second for BiomedCLIP); nothing here hashes them again.
 */

import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { readJson } from '../common/io.js';
import { firstIssue, typeName } from '../common/options.js';
import { warnOnce } from '../common/warn-once.js';
import { PreprocessOptionsSchema, type ResolvedPreprocess } from '../images/preprocess.js';
import { RUN_DATA_FILE, readRunData, readRunModelDir } from '../model/run-files.js';
import { checkpointRun } from '../model/run-model.js';

export interface ModelSource {
  modelDir: string;
  checkpoint: string | null;
  /** Contour settings of the cache the cell was trained on (absent for a bare model folder). */
  overlay?: { thickness: number; source: 'landmarks' | 'rle' };
  /**
   * Preprocessing of the cache the cell was trained on (preset, size, resize, kernel, mean/std):
   * absent for a bare model folder, whose images are preprocessed as its model.json says.
   */
  preprocess?: ResolvedPreprocess;
}

/** What a run's cache made its images with, which a served cell must repeat. */
export type TrainedSettings = Pick<ModelSource, 'overlay' | 'preprocess'>;

/**
 * @throws {ConfigError} `model` is neither a model folder (model.json) nor a trained cell (best.ckpt
 *   inside runs/<run>/cells/), or the cell's run has no config.json naming an existing model folder.
 *   Whether the folder is still the model the run recorded is openModel's check (checkRunCheckpoint).
 */
export function resolveModelSource(model: string, checkpoint?: string | null): ModelSource {
  if (existsSync(join(model, 'model.json'))) {
    const trained = checkpoint ? checkpointSettings(checkpoint) : {};
    return { modelDir: model, checkpoint: checkpoint ?? null, ...trained };
  }
  const isFile = existsSync(model) && statSync(model).isFile();
  // resolved, so that `.` or `best.ckpt` typed inside the cell folder is found in its run
  const cell = resolve(isFile ? dirname(model) : model);
  const ckpt = isFile ? model : join(cell, 'best.ckpt');
  if (!existsSync(ckpt)) {
    throw new ConfigError(
      `--model ${model} is neither an exported model folder (model.json) nor a trained cell (best.ckpt)`,
    );
  }
  if (checkpoint)
    throw new ConfigError('--checkpoint is for a model folder; a cell brings its own best.ckpt');
  const runDir = checkpointRun(ckpt);
  if (!runDir) {
    throw new ConfigError(`${cell} is not inside a run's cells/ folder, so its model folder is unknown`);
  }
  const modelDir = readRunModelDir(runDir);
  if (!modelDir) throw new ConfigError(`${runDir} has no config.json naming the model folder`);
  if (!existsSync(join(modelDir, 'model.json'))) {
    throw new ConfigError(`the run's model folder ${modelDir} (config.json model.dir) has no model.json`);
  }
  return { modelDir, checkpoint: ckpt, ...runSettings(runDir) };
}

const PREPROCESS_FIELDS = ['preset', 'size', 'resize', 'kernel', 'mean', 'std', 'fastShrinkOnLoad'] as const;

/**
 * The preprocessing fields of a recorded object (data.json summaries.cache, cache.json); undefined
 * without any. Each field it holds is checked as the option would be, so a hand-edited or damaged
 * value is refused here by file and field rather than later without either.
 * @throws {ConfigError} naming `file` and `field`.<name>, the value and what it must be.
 */
function recordedPreprocess(p: unknown, file: string, field: string): ResolvedPreprocess | undefined {
  if (p === undefined || p === null) return undefined;
  if (typeof p !== 'object' || Array.isArray(p))
    throw new ConfigError(`${file}: field ${field} must be an object, got ${typeName(p)}`);
  const r = p as Record<string, unknown>;
  const kept = Object.fromEntries(PREPROCESS_FIELDS.filter((k) => r[k] !== undefined).map((k) => [k, r[k]]));
  if (Object.keys(kept).length === 0) return undefined;
  const checked = firstIssue(PreprocessOptionsSchema, kept);
  if (!checked.ok)
    throw new ConfigError(
      `${file}: field ${field}.${checked.field} ${checked.issue.message} (recorded ${JSON.stringify(kept[checked.field.split('.')[0]!])})`,
      { cause: checked.error },
    );
  // the recorded values themselves, not the schema's defaults for the fields left out
  return kept as unknown as ResolvedPreprocess;
}

/**
 * The contour settings and preprocessing a run trained with: recorded in its data.json (contours
 * since 2026-12-05, preprocessing since 2026-12-06), else read from the cache its data.json names.
 * Neither (an older run whose cache was deleted): left out, with a warning for each (once per run),
 * since contours are then drawn with the defaults and images preprocessed as the model folder says.
 */
export function runSettings(runDir: string): TrainedSettings {
  const data = readRunData(runDir);
  const recorded = data?.summaries?.['cache'] as
    | { contour?: ModelSource['overlay'] | null; preprocess?: unknown }
    | undefined;
  let overlay = recorded?.contour
    ? { thickness: recorded.contour.thickness, source: recorded.contour.source }
    : undefined;
  let preprocess = recordedPreprocess(
    recorded?.preprocess,
    join(runDir, RUN_DATA_FILE),
    'summaries.cache.preprocess',
  );
  const cacheDir = data?.fingerprint.cacheDir;
  let meta: { contour?: ModelSource['overlay']; preprocess?: unknown } | null = null;
  if ((!overlay || !preprocess) && cacheDir) {
    meta = readJson(join(cacheDir, 'cache.json'));
    if (!overlay && meta?.contour)
      overlay = { thickness: meta.contour.thickness, source: meta.contour.source };
    preprocess ??= recordedPreprocess(meta?.preprocess, join(cacheDir, 'cache.json'), 'preprocess');
  }
  if (cacheDir && (!overlay || !preprocess)) {
    const where = `${cacheDir}${isAbsolute(cacheDir) ? '' : `, recorded relative to the folder the run was started from; looked for from ${process.cwd()}`}`;
    const gone = meta
      ? `${runDir}: neither its data.json nor the cache it trained on (${where}) records`
      : `${runDir}: the cache it trained on (${where}) is gone and its data.json predates recording`;
    if (!overlay)
      warnOnce(
        runDir,
        'CXRMASK_CONTOUR_UNKNOWN',
        `${gone} the contour settings, so contours are drawn with the defaults`,
      );
    if (!preprocess)
      warnOnce(
        runDir,
        'CXRMASK_PREPROCESS_UNKNOWN',
        `${gone} its preprocessing, so images are preprocessed as the model folder's model.json says (the biomedclip preset), which may not be what the run trained on`,
      );
  }
  return { ...(overlay ? { overlay } : {}), ...(preprocess ? { preprocess } : {}) };
}

/** runSettings of the run holding `runs/<run>/cells/<cell>/best.ckpt`; none for any other path. */
export function checkpointSettings(checkpoint: string): TrainedSettings {
  const runDir = checkpointRun(checkpoint);
  return runDir ? runSettings(runDir) : {};
}
