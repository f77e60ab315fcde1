/**
 * The exported model folder a run started with, as data.json records it (RunModel): the folder made
 * absolute and the sha256 of its model.json and weights. A resume checks the folder still holds that
 * model (ts/distributed/run-experiment.ts), and so does serving a cell of the run
 * (ts/service/model-source.ts): its best.ckpt was trained on that encoder. Here, below the experiment
 * and the service, so that both use one fingerprint.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { sha256, sha256File } from '../common/hash.js';
import { modelFile, readModelMeta } from './meta.js';
import type { RunModel } from './run-files.js';

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
