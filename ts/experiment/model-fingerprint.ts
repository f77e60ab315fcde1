/**
 * Which model made a set of stored predictions. A cell's model is its best.ckpt, hashed whole
 * (sha256): a retrained cell (its folder deleted, the run resumed) writes a new best.ckpt, and
 * predictions of the old one must not be scored with the new one's validation thresholds. Hashing
 * runs at ~1 GB/s (under a second for BiomedCLIP's ~750 MB checkpoint, once per cell per resume
 * with test datasets), exact where size+mtime would trust a copied or touched file. The zero-shot
 * model is the exported folder (model.json, the TorchScript file) plus the prompts it scored with.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256, sha256File } from '../images/cache-verify.js';
import { modelFile, readModelMeta } from '../model/meta.js';

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
  const metaPath = join(modelDir, 'model.json');
  let model: string = modelDir;
  if (existsSync(metaPath)) {
    const weights = modelFile(modelDir, readModelMeta(modelDir));
    model = `${sha256(readFileSync(metaPath))}:${existsSync(weights) ? sha256File(weights) : 'no-weights'}`;
  }
  return `sha256:${sha256(JSON.stringify({ model, prompts, negativePrompts }))}`;
}
