/**
 * Child process of exit.test.ts: host buffers still held by JS at process exit, after ops that left
 * pooled host mappings behind (a classifier's large input copies). Prints "done" and exits; the
 * parent checks the exit was clean (no heap-corruption abort during static destruction).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Classifier } from '../../ts/model/classifier.js';
import { hostBytes, recordsToImages } from '../../ts/model/records.js';
import { MODEL_DIR } from './helpers.js';

const S = 64;
const n = 4;
const rec = hostBytes(n * 2 * S * S * 16); // ≥ 256 KiB: its own pooled mapping
rec.fill(7, 0, 2 * S * S);
const kept: Uint8Array[] = [rec];
await recordsToImages(
  {
    kind: 'records',
    records: rec.subarray(0, n * 2 * S * S),
    size: S,
    pixels: {
      mean: [0.5, 0.5, 0.5],
      std: [0.25, 0.25, 0.25],
      paint: new Float32Array(24),
      original: true,
      masked: true,
    },
  },
  n,
);
const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 1 });
const s = (JSON.parse(readFileSync(join(MODEL_DIR, 'model.json'), 'utf8')) as { imageSize: number })
  .imageSize;
const x = new Float32Array(8 * 3 * s * s).map((_, i) => Math.sin(i) * 0.5);
for (let i = 0; i < 3; i++) await c.trainStep(x, 8, new Float32Array(8 * 5).fill(1));
await c.dispose();
for (let i = 0; i < 4; i++) kept.push(hostBytes(300_000 + i * 4096));
console.log(`done ${kept.length}`); // one string: FORCE_COLOR (set by uvu) would colour a number
