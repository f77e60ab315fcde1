/**
 * Attribution throughput (images/s per method) of the addon vs the same computation in eager PyTorch on
 * the same TorchScript file (bench/attribution_torch.py), interleaved call by call in one run, as a ratio. Zero-shot logit of a
 * positive/negative prompt pair; SmoothGrad with --samples, IG with --steps, both in batches of --batch.
 *
 * --eager compares with the open_clip image tower a PyTorch user builds (same weights) instead of the
 * TorchScript file; --bf16 runs both sides under bf16 autocast; --methods picks methods; --out writes
 * the JSON there (--json: bench/out/attribution.json).
 *
 *   node --import tsx bench/attribution.ts [--model models/tiny --n 4 --threads 2 --device cpu --json]
 *   node --import tsx bench/attribution.ts --model M --device cuda --methods ig --eager --bf16 --out F
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ATTRIBUTION_METHODS } from '../ts/model/attribution.js';
import { ClipModel } from '../ts/model/clip.js';
import { packageRoot, setThreads } from '../ts/native.js';
import { benchDir, median, pythonExe } from './common.js';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: join(packageRoot, 'models', 'tiny') },
    n: { type: 'string', default: '4' },
    batch: { type: 'string', default: '16' },
    samples: { type: 'string', default: '8' },
    steps: { type: 'string', default: '16' },
    threads: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '2' },
    iters: { type: 'string', default: '5' },
    device: { type: 'string', default: 'cpu' },
    python: { type: 'string' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
    methods: { type: 'string', default: ATTRIBUTION_METHODS.join(',') },
    eager: { type: 'boolean', default: false },
    bf16: { type: 'boolean', default: false },
  },
});
const methods = opt.methods!.split(',').map((m) => {
  const found = ATTRIBUTION_METHODS.find((k) => k === m);
  if (!found) throw new RangeError(`--methods: unknown method '${m}' (${ATTRIBUTION_METHODS.join(', ')})`);
  return found;
});
const n = Number(opt.n);
const num = (k: 'batch' | 'samples' | 'steps' | 'threads' | 'warmup' | 'iters') => Number(opt[k]);
setThreads(num('threads'));
const clip = await ClipModel.load(opt.model!, { device: opt.device as 'cpu' });
const s = clip.imageSize;
const x = Float32Array.from({ length: n * 3 * s * s }, (_, i) => Math.sin(i * 0.37) * 1.5);
const text = Float32Array.from({ length: 2 * clip.embedDim }, (_, i) => Math.cos(i * 0.9));
const args = ['n', 'batch', 'samples', 'steps', 'threads', 'device'].flatMap((k) => [
  `--${k}`,
  String(opt[k as keyof typeof opt]),
]);
// Python in --serve mode: each addon call is followed by the same Python call, so both see the same load.
const py = spawn(
  pythonExe(opt.python),
  [
    join(benchDir, 'attribution_torch.py'),
    '--serve',
    '--model',
    join(opt.model!, 'clip.pt'),
    '--size',
    String(s),
    ...args,
    ...(opt.eager ? ['--eager'] : []),
    ...(opt.bf16 ? ['--bf16'] : []),
  ],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);
const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
const first = await lines.next();
if (first.done || first.value !== 'ready')
  throw new Error('bench/attribution_torch.py did not start (is torch importable?)');
async function pyTime(method: string): Promise<number> {
  py.stdin.write(`${method}\n`);
  const r = await lines.next();
  if (r.done) throw new Error('bench/attribution_torch.py ended early');
  return Number(r.value);
}
const addon: Record<string, number> = {};
const torch: Record<string, number> = {};
for (const method of methods) {
  const o = { method, samples: num('samples'), steps: num('steps'), batch: num('batch'), bf16: opt.bf16 };
  for (let w = 0; w < num('warmup'); w++) {
    await clip.attribute(x, n, text, o);
    await pyTime(method);
  }
  const ta: number[] = [];
  const tp: number[] = [];
  for (let k = 0; k < num('iters'); k++) {
    const t0 = performance.now();
    await clip.attribute(x, n, text, o);
    ta.push((performance.now() - t0) / 1000);
    tp.push(await pyTime(method));
  }
  addon[method] = n / median(ta);
  torch[method] = n / median(tp);
}
py.stdin.end();
await clip.dispose();
const rows = methods.map((m) => ({
  method: m,
  addonImgS: addon[m]!,
  torchImgS: torch[m]!,
  ratio: addon[m]! / torch[m]!,
}));
console.log(
  `attribution, ${opt.model} on ${opt.device}, n=${n}, batch ${opt.batch}, SmoothGrad ${opt.samples} samples, IG ${opt.steps} steps, ${opt.threads} threads, ${opt.bf16 ? 'bf16 autocast' : 'fp32'}, Python ${opt.eager ? 'eager open_clip' : 'TorchScript'}`,
);
console.log('method       addon img/s  torch img/s  addon/torch');
for (const r of rows)
  console.log(
    `${r.method.padEnd(12)} ${r.addonImgS.toFixed(2).padStart(11)}  ${r.torchImgS.toFixed(2).padStart(11)}  ${r.ratio.toFixed(2).padStart(11)}`,
  );
if (opt.json || opt.out) {
  const file = opt.out ?? join(benchDir, 'out', 'attribution.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ options: opt, rows }, null, 2)}\n`);
}
