/** Shared by the README/examples test and the packed-tarball test: a trained segmenter folder, a stable image. */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Segmenter } from '../../ts/index.js';
import { ROOT } from '../native/helpers.js';

export const SEG_EXPORT = join(ROOT, 'models', 'seg-tiny');

/**
 * A `cxrmask segmenter train`-shaped folder (train.json naming the export, best.pt) after a few steps on
 * a fixed pattern: trained weights, cheaply. Returns the folder.
 */
export async function trainedSegmenterFolder(out: string, exportDir = SEG_EXPORT): Promise<string> {
  mkdirSync(out, { recursive: true });
  const seg = await Segmenter.load(exportDir, { device: 'cpu', lr: 1e-2 });
  try {
    const S = seg.size;
    const n = 2;
    const x = new Float32Array(n * 3 * S * S).map((_, i) => Math.sin(i * 0.013));
    const bits = new Uint8Array(n * S * S).map(
      (_, p) => (p % S < S / 2 ? 1 : 2) * (((p / S) | 0) % S > S / 4 ? 1 : 0),
    );
    for (let i = 0; i < 3; i++) await seg.trainStep(x, n, bits);
    await seg.save(join(out, 'best.pt'), { weightsOnly: true });
  } finally {
    await seg.dispose();
  }
  const state = {
    fingerprint: { test: true },
    modelDir: resolve(exportDir),
    epoch: 1,
    best: { epoch: 1, valDice: 0 },
  };
  writeFileSync(join(out, 'train.json'), JSON.stringify(state));
  return out;
}

/** The first .jpg under `dir` in path order (a stable image of a synthetic tree). */
export function firstJpeg(dir: string): string {
  const jpegs: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }))
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.jpg')) jpegs.push(join(d, e.name));
  };
  walk(dir);
  return jpegs.sort()[0]!;
}
