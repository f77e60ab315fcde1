/**
 * Which model made a set of stored predictions. A cell's model is its best.ckpt, hashed whole
 * (sha256): a retrained cell (its folder deleted, the run resumed) writes a new best.ckpt, and
 * predictions of the old one must not be scored with the new one's validation thresholds. Hashing
 * runs at ~1 GB/s (under a second for BiomedCLIP's ~750 MB checkpoint, once per cell per resume
 * with test datasets), exact where size+mtime would trust a copied or touched file. The zero-shot
 * model is the exported folder (model.json, the TorchScript file) plus the prompts it scored with.
 * The run's model is the exported folder alone (ts/model/run-model.ts: recorded in data.json when a
 * run starts, it must still be what model.dir holds when the run is resumed or a cell served).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sha256, sha256File } from '../common/hash.js';
import { modelFolderHash } from '../model/run-model.js';

/** sha256 of `cells/<id>/best.ckpt`; null when the cell has none. */
export function cellModelFingerprint(runDir: string, id: string): string | null {
  const ckpt = join(runDir, 'cells', id, 'best.ckpt');
  return existsSync(ckpt) ? `sha256:${sha256File(ckpt)}` : null;
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
