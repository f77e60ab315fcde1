/**
 * The run folder: a fresh one for a new run (never reusing an old one), or an existing one to resume,
 * held under its lock while the run works in it; and the cache folder a run recorded.
 */

import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { readJson, writeFailure, writeJsonAtomic } from '../common/io.js';
import { broadcastString, type GroupLike } from '../model/process-group.js';
import type { RunData } from '../model/run-files.js';
import { checkCellConfigs } from './cell-config.js';
import { plannedCells } from './cells.js';
import { type ExperimentConfig, MAX_NEW_RUN_NAME, parseConfig } from './config.js';
import { lockRun, type RunLock } from './run-lock.js';

function timestamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\..+$/, '').replace('T', '-');
}

/**
 * A fresh folder `<runsDir>/<timestamp>[-name][-k]`; never an existing one.
 * @throws {ConfigError} `name` is longer than MAX_NEW_RUN_NAME (nothing is made).
 */
export function newRunDir(runsDir: string, name: string): string {
  if (name.length > MAX_NEW_RUN_NAME)
    throw new ConfigError(
      `invalid config:\n- name: at most ${MAX_NEW_RUN_NAME} characters for a new run (it becomes part of the run folder name); ${name.length} given`,
    );
  try {
    mkdirSync(runsDir, { recursive: true });
  } catch (e) {
    throw writeFailure(runsDir, e);
  }
  const base = join(runsDir, `${timestamp()}${name ? `-${name}` : ''}`);
  for (let k = 1; ; k++) {
    const dir = k === 1 ? base : `${base}-${k}`;
    try {
      mkdirSync(dir);
      return dir;
    } catch (e) {
      // taken (by an earlier run, or another started this second): the next suffix
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw writeFailure(dir, e);
    }
  }
}

/** The recorded keyed cache folder when it still exists (the config may name a parent holding several). */
export function recordedCacheDir(recorded: RunData | null): string | null {
  const dir = recorded?.fingerprint.cacheDir;
  return dir && existsSync(dir) ? dir : null;
}

/**
 * The config a new run saves and runs with: model.dir absolute, so a resume from another working
 * directory opens the same model folder (data.json's model fingerprint then refuses any other).
 */
export function withAbsoluteModelDir(config: ExperimentConfig): ExperimentConfig {
  return { ...config, model: { ...config.model, dir: resolve(config.model.dir) } };
}

export interface RunFolder {
  runDir: string;
  /** rank 0 holds the folder's lock for the group (the others run under its barriers); null elsewhere. */
  lock: RunLock | null;
}

/**
 * The folder a run works in: `resume` (locked by rank 0), else a new one with config.json written (by
 * rank 0, which tells the other ranks its name).
 * @throws {Error} (rejects) `resume` has no config.json.
 */
export async function claimRunFolder(
  config: ExperimentConfig,
  resume: string | null | undefined,
  dist: GroupLike | undefined,
): Promise<RunFolder> {
  const root = !dist || dist.rank === 0;
  if (resume) {
    if (!existsSync(join(resume, 'config.json')))
      throw new Error(`cannot resume ${resume}: no config.json there`);
    return { runDir: resume, lock: root ? await lockRun(resume) : null };
  }
  if (dist && dist.rank !== 0) {
    // the folder rank 0 created (names carry a timestamp, so each rank would pick its own)
    return { runDir: await broadcastString(dist, ''), lock: null };
  }
  const runDir = newRunDir(config.runsDir, config.name);
  const lock = await lockRun(runDir);
  writeJsonAtomic(join(runDir, 'config.json'), config);
  if (dist) await broadcastString(dist, runDir);
  return { runDir, lock };
}

/**
 * The config a resumed run goes on with: its saved config.json (which wins over the caller's), with
 * every cell already started checked against the settings it recorded.
 * @throws {Error} no config.json in `runDir`.
 * @throws {ConfigError} the saved config does not validate, or a cell recorded other settings.
 */
export function resumedConfig(runDir: string): ExperimentConfig {
  const saved = readJson<unknown>(join(runDir, 'config.json'));
  if (!saved) throw new Error(`cannot resume ${runDir}: no config.json there`);
  const config = parseConfig(saved, `${runDir}/config.json`);
  checkCellConfigs(runDir, config, plannedCells(config), `resume ${runDir}`);
  return config;
}
