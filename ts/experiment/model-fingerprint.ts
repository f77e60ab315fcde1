/**
 * Which model made a set of stored predictions. A cell's model is its best.ckpt, hashed whole
 * (sha256): a retrained cell (its folder deleted, the run resumed) writes a new best.ckpt, and
 * predictions of the old one must not be scored with the new one's validation thresholds. Hashing
 * runs at ~1 GB/s (under a second for BiomedCLIP's ~750 MB checkpoint, once per cell per resume
 * with test datasets), exact where size+mtime would trust a copied or touched file. The zero-shot
 * model is the exported folder (model.json, the TorchScript file) plus the prompts it scored with.
 * The run's model (runModel) is the exported folder alone: recorded in data.json when a run starts,
 * it must still be what model.dir holds when the run is resumed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { sha256, sha256File } from '../images/cache-verify.js';
import { modelFile, readModelMeta } from '../model/meta.js';
import type { RunModel } from '../model/run-files.js';

/** sha256 of `cells/<id>/best.ckpt`; null when the cell has none. */
export function cellModelFingerprint(runDir: string, id: string): string | null {
  const ckpt = join(runDir, 'cells', id, 'best.ckpt');
  return existsSync(ckpt) ? `sha256:${sha256File(ckpt)}` : null;
}

/**
 * sha256 of an exported model folder's model.json and of its weights file, as `<model.json>:<weights>`
 * ('no-weights' when that file is absent); null for a folder without model.json.
 */
export function modelFolderHash(modelDir: string): string | null {
  const metaPath = join(modelDir, 'model.json');
  if (!existsSync(metaPath)) return null;
  const weights = modelFile(modelDir, readModelMeta(modelDir));
  return `${sha256(readFileSync(metaPath))}:${existsSync(weights) ? sha256File(weights) : 'no-weights'}`;
}

/** The model folder's model.json and weights, with the prompts (a folder without model.json: its path). */
export function zeroShotModelFingerprint(
  modelDir: string,
  prompts: readonly string[],
  negativePrompts: readonly string[] | null,
): string {
  const model = modelFolderHash(modelDir) ?? modelDir;
  return `sha256:${sha256(JSON.stringify({ model, prompts, negativePrompts }))}`;
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

/**
 * `recorded` against `now` in words (the folder now, both fingerprints, where the recorded one was);
 * null when the model is the same (a moved or copied folder with the same files is the same model).
 */
export function modelChange(recorded: RunModel, now: RunModel): string | null {
  if (recorded.sha256 === now.sha256) return null;
  return (
    `the model folder ${now.dir} (config.json model.dir) is not the model this run started with: ` +
    `sha256 of model.json:weights ${shortHash(recorded.sha256)} when recorded (from ${recorded.dir}), ${shortHash(now.sha256)} now`
  );
}
