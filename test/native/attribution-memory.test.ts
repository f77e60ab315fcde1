/**
 * SmoothGrad's memory follows `batch`, not `samples`. Before, the addon built every noisy copy of an
 * image at once, then every gradient ([samples,3,S,S] several times over): one 224² image at batch 8
 * peaked at 0.67 GB RSS with 64 samples and 3.7 GB with 1024, ~3 MB per sample. Measured in a child
 * process: the peak RSS (getrusage's maxrss) only grows, and the suite runs every file in one process.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MODEL_DIR, ROOT, requireModel } from './helpers.js';

const CHILD = `
import { ClipModel } from ${JSON.stringify(join(ROOT, 'ts', 'model', 'clip.ts'))};
const S = 224;
const peak = () => process.resourceUsage().maxRSS * 1024;
const clip = await ClipModel.load(${JSON.stringify(MODEL_DIR)}, { device: 'cpu' });
const x = Float32Array.from({ length: 3 * S * S }, (_, i) => Math.sin(i));
const text = new Float32Array(clip.embedDim).fill(0.1);
const o = { method: 'smoothgrad', batch: 4, seed: 3 };
// warm-up: one chunk, so the allocator holds what a chunk needs
for (let i = 0; i < 3; i++) await clip.attribute(x, 1, text, { ...o, samples: 4 });
const before = peak();
const r = await clip.attribute(x, 1, text, { ...o, samples: 256 });
console.log(JSON.stringify({ grown: peak() - before, finite: r.map.every(Number.isFinite) }));
await clip.dispose();
`;

test('SmoothGrad over 256 samples at batch 4 peaks no higher than 4 samples do (+ a small margin)', () => {
  requireModel();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.is(r.status, 0, r.stderr);
  const { grown, finite } = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    grown: number;
    finite: boolean;
  };
  assert.ok(finite);
  // The old code needed 3 × 256 × 0.6 MB ≈ 460 MB more here (noise, noisy copies, gradients): 715 MiB.
  const mib = grown / 2 ** 20;
  assert.ok(mib < 64, `peak RSS grew by ${mib.toFixed(0)} MiB over 256 samples`);
});

test.run();
