/**
 * What `--model` names for the commands that serve a classifier: an exported model folder (zero-shot,
 * or with `--checkpoint`), or a trained cell of a run (`runs/<run>/cells/<cell>`, or its best.ckpt),
 * whose run config names the model folder and whose cache recorded the contour settings the model
 * was trained with (so predicted contours are drawn as thick as the training ones). A checkpoint
 * given with a model folder brings its cell's contour settings the same way.
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
import { readRunData, readRunModelDir } from '../model/run-files.js';
import { checkpointRun } from '../model/run-model.js';

export interface ModelSource {
  modelDir: string;
  checkpoint: string | null;
  /** Contour settings of the cache the cell was trained on (absent for a bare model folder). */
  overlay?: { thickness: number; source: 'landmarks' | 'rle' };
}

/**
 * @throws {ConfigError} `model` is neither a model folder (model.json) nor a trained cell (best.ckpt
 *   inside runs/<run>/cells/), or the cell's run has no config.json naming an existing model folder.
 *   Whether the folder is still the model the run recorded is openModel's check (checkRunCheckpoint).
 */
export function resolveModelSource(model: string, checkpoint?: string | null): ModelSource {
  if (existsSync(join(model, 'model.json'))) {
    const contour = checkpoint ? checkpointContour(checkpoint) : undefined;
    return { modelDir: model, checkpoint: checkpoint ?? null, ...(contour ? { overlay: contour } : {}) };
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
  const out: ModelSource = { modelDir, checkpoint: ckpt };
  const contour = runContour(runDir);
  if (contour) out.overlay = contour;
  return out;
}

/**
 * The contour settings a run trained with: recorded in its data.json (runs since 2026-12-05), else
 * read from the cache its data.json names. Neither (an older run whose cache was deleted): undefined,
 * with a warning, since the contours are then drawn with the defaults.
 */
export function runContour(runDir: string): ModelSource['overlay'] {
  const data = readRunData(runDir);
  const recorded = (data?.summaries?.['cache'] as { contour?: ModelSource['overlay'] | null } | undefined)
    ?.contour;
  if (recorded) return { thickness: recorded.thickness, source: recorded.source };
  const cacheDir = data?.fingerprint.cacheDir;
  const c = cacheDir
    ? readJson<{ contour?: ModelSource['overlay'] }>(join(cacheDir, 'cache.json'))?.contour
    : undefined;
  if (c) return { thickness: c.thickness, source: c.source };
  if (cacheDir) {
    process.emitWarning(
      `${runDir}: the cache it trained on (${cacheDir}${isAbsolute(cacheDir) ? '' : `, recorded relative to the folder the run was started from; looked for from ${process.cwd()}`}) is gone and its data.json predates recording the contour settings, so contours are drawn with the defaults`,
      { code: 'CXRMASK_CONTOUR_UNKNOWN' },
    );
  }
  return undefined;
}

/** runContour of the run holding `runs/<run>/cells/<cell>/best.ckpt`; undefined for any other path. */
export function checkpointContour(checkpoint: string): ModelSource['overlay'] {
  const runDir = checkpointRun(checkpoint);
  return runDir ? runContour(runDir) : undefined;
}
