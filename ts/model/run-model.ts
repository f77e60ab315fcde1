/**
 * The exported model folder a run started with, as data.json records it (RunModel): the folder made
 * absolute and the sha256 of its model.json and weights. A resume checks the folder still holds that
 * model (ts/distributed/run-experiment.ts), and so does opening a cell's checkpoint of the run
 * (checkRunCheckpoint, from openModel: the CLI's serve/predict/explain, MaskingPredictor.load, a
 * library call): its best.ckpt was trained on that encoder. Here, below the experiment and the service,
 * so that all use one fingerprint.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { sha256, sha256File } from '../common/hash.js';
import { warnOnce } from '../common/warn-once.js';
import { modelFile, readModelMeta } from './meta.js';
import { RUN_DATA_FILE, type RunModel, readRunData, readRunModelDir } from './run-files.js';

/**
 * sha256 of an exported model folder's model.json and of its weights file, as `<model.json>:<weights>`
 * ('no-weights' when that file is absent); null for a folder without model.json. Reads the weights
 * whole: under a second for BiomedCLIP's ~750 MB.
 */
export function modelFolderHash(modelDir: string): string | null {
  const metaPath = join(modelDir, 'model.json');
  if (!existsSync(metaPath)) return null;
  const weights = modelFile(modelDir, readModelMeta(modelDir));
  return `${sha256(readFileSync(metaPath))}:${existsSync(weights) ? sha256File(weights) : 'no-weights'}`;
}

/** The model a run starts (or goes on) with: model.dir made absolute, and modelFolderHash of it. */
export function runModel(modelDir: string): RunModel {
  const dir = resolve(modelDir);
  return { dir, sha256: modelFolderHash(dir) };
}

const shortHash = (h: string | null) =>
  h === null
    ? 'none (no model.json)'
    : h
        .split(':')
        .map((p) => (p.length > 12 ? `${p.slice(0, 12)}…` : p))
        .join(':');

/** Which of the folder's files differ between two fingerprints, in words. */
function changedFiles(was: string | null, now: string | null): string {
  if (now === null) return 'it has no model.json now';
  if (was === null) return 'it had no model.json when recorded';
  const [metaWas, weightsWas] = was.split(':');
  const [metaNow, weightsNow] = now.split(':');
  const files = [
    ...(metaWas !== metaNow ? ['model.json'] : []),
    ...(weightsWas !== weightsNow ? ['the weights file'] : []),
  ];
  return `${files.join(' and ')} changed`;
}

/**
 * `recorded` against `now` in words (the folder now and where it was `named`, what changed, both
 * fingerprints, where the recorded one was); null when the model is the same (a moved or copied folder with the same files is
 * the same model).
 */
export function modelChange(
  recorded: RunModel,
  now: RunModel,
  named = 'config.json model.dir',
): string | null {
  if (recorded.sha256 === now.sha256) return null;
  return (
    `the model folder ${now.dir} (${named}) is not the model this run started with: ` +
    `${changedFiles(recorded.sha256, now.sha256)}; sha256 of model.json:weights ${shortHash(recorded.sha256)} when recorded (from ${recorded.dir}), ${shortHash(now.sha256)} now`
  );
}

/**
 * The run folder of a cell's checkpoint (`runs/<run>/cells/<cell>/best.ckpt`), absolute; null for any
 * other path. Resolved first: `best.ckpt` typed inside the cell folder is the same cell.
 */
export function checkpointRun(checkpoint: string): string | null {
  const cells = dirname(dirname(resolve(checkpoint)));
  return basename(cells) === 'cells' ? dirname(cells) : null;
}

/**
 * modelFolderHash, remembered while the folder's files keep their identity (device, inode, size, mtime,
 * ctime): a process that opens every cell of a run (attribution, cross-dataset tests) hashes the weights
 * once. ctime because an in-place copy that keeps size and mtime (`cp -p`, `rsync -t --inplace`) still
 * moves it, and no call can set it back.
 */
const hashes = new Map<string, { key: string; hash: string | null }>();
function modelFolderHashOnce(modelDir: string): string | null {
  const dir = resolve(modelDir);
  const metaPath = join(dir, 'model.json');
  if (!existsSync(metaPath)) return null;
  const id = (f: string) => {
    try {
      const st = statSync(f, { bigint: true });
      return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch {
      return 'none';
    }
  };
  const key = `${id(metaPath)}/${id(modelFile(dir, readModelMeta(dir)))}`;
  const known = hashes.get(dir);
  if (known?.key === key) return known.hash;
  const hash = modelFolderHash(dir);
  hashes.set(dir, { key, hash });
  return hash;
}

/**
 * A cell's checkpoint (`runs/<run>/cells/<cell>/best.ckpt`) is put on `modelDir`: that folder must hold
 * the model.json and weights the run recorded in data.json when it started, else the head sits on another
 * encoder and its scores are silently wrong. Any other checkpoint path: nothing to check. A run that
 * recorded no model: a warning (CXRMASK_MODEL_UNRECORDED), once per run.
 * @throws {ConfigError} naming the checkpoint, the run, the folder (as config.json model.dir, or as
 *   given with the checkpoint when it is another folder), what changed and when it was recorded.
 */
export function checkRunCheckpoint(modelDir: string, checkpoint: string): void {
  const runDir = checkpointRun(checkpoint);
  if (!runDir) return;
  const data = readRunData(runDir);
  if (!data?.model) {
    // once per run, not per cell opened
    warnOnce(
      runDir,
      'CXRMASK_MODEL_UNRECORDED',
      `${runDir}: the run recorded no model (no model in ${RUN_DATA_FILE}: it predates that record), so the model folder ${resolve(modelDir)} cannot be checked against the one ${checkpoint} was trained on`,
    );
    return;
  }
  const configured = readRunModelDir(runDir);
  const named =
    configured !== null && resolve(configured) === resolve(modelDir)
      ? 'config.json model.dir'
      : 'given with the checkpoint';
  const change = modelChange(
    data.model,
    { dir: resolve(modelDir), sha256: modelFolderHashOnce(modelDir) },
    named,
  );
  if (change)
    throw new ConfigError(
      `cannot use ${checkpoint} of run ${runDir}: ${change} (recorded ${data.recordedAt} in ${RUN_DATA_FILE}). The checkpoint's head was trained on the recorded model's encoder: restore that model folder, or train the cell again`,
    );
}
