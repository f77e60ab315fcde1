/**
 * What opening a trained model costs before its weights: openModel reads a checkpoint's header
 * (Classifier.readHeader) to learn its kind, then loads it. The header read takes the pickled fields
 * alone; the baseline is what a PyTorch user does to read the same fields (torch.jit.load of the
 * whole file, then getattr). Checkpoints: a fine-tuned classifier of `--model` after one step, with
 * its AdamW state and weights-only.
 *
 *   node --import tsx bench/checkpoint-open.ts --model models/biomedclip [--iters 5]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Classifier } from '../ts/model/classifier.js';
import { median, pythonExe } from './common.js';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/tiny' },
    iters: { type: 'string', default: '5' },
    python: { type: 'string' },
  },
});
const iters = Number(opt.iters);
const S = 224;

async function msOf(f: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
  }
  return median(times);
}

/** torch.jit.load of the whole file and the header's fields read from it, in ms (median). */
function pythonMs(path: string): number {
  const script = [
    'import sys, time, torch',
    'ts = []',
    `for _ in range(${iters}):`,
    '    t = time.perf_counter(); m = torch.jit.load(sys.argv[1])',
    '    h = [m._c.getattr(k) for k in ("format", "headOnly", "freezeEncoder", "inputDim", "numLabels", "step")]',
    '    ts.append((time.perf_counter() - t) * 1e3)',
    'print(sorted(ts)[len(ts) // 2])',
  ].join('\n');
  const r = spawnSync(pythonExe(opt.python), ['-c', script, path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
}

const dir = mkdtempSync(join(tmpdir(), 'cxrmask-ckpt-'));
try {
  const c = await Classifier.create({ modelDir: opt.model, device: 'cpu', seed: 0 });
  const x = new Float32Array(3 * S * S).fill(0.1);
  await c.trainStep(x, 1, new Float32Array(c.numLabels).fill(1));
  const files = { 'with optimizer': join(dir, 'full.ckpt'), 'weights only': join(dir, 'weights.ckpt') };
  await c.save(files['with optimizer']);
  await c.save(files['weights only'], { weightsOnly: true });
  const rows = [];
  for (const [name, path] of Object.entries(files)) {
    const header = await msOf(() => Classifier.readHeader(path));
    const load = await msOf(() => c.load(path));
    const python = pythonMs(path);
    rows.push({
      checkpoint: name,
      MB: +(statSync(path).size / 1e6).toFixed(1),
      'readHeader ms': +header.toFixed(1),
      'load ms': +load.toFixed(0),
      'torch.jit.load ms': +python.toFixed(0),
      'python ÷ readHeader': +(python / header).toFixed(0),
    });
  }
  await c.dispose();
  console.table(rows);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
