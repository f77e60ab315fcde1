/**
 * Serving benchmark: one chest X-ray JPEG in → segment (lung/heart masks) + overlay (Eq. 1 contours,
 * PNG) + classify (original and masked) → probabilities out, per image. p50/p95 latency and images/s
 * at concurrency 1 and 8, in-process (MaskingPredictor) and over real HTTP (`cxrmask serve` in a
 * child process, 127.0.0.1), against what a Python user would run on the same TorchScript files in
 * the same run (bench/serve_torch.py: PIL + torch.jit, an eager loop), printed as ratios. The paths
 * take turns, one pass over the images each per round (--reps rounds).
 *
 *   node --import tsx bench/serve.ts [--n 16] [--reps 2] [--width 1024] [--height 1280]
 *     [--model models/tiny] [--segmenter models/seg-tiny] [--device cpu] [--threads T] [--python PATH]
 *
 * --max-batch B: the most requests that go through the models together (default the predictor's; 1 =
 * one at a time, as before batching); the in-process batch counts go into serve.json.
 * --eager: the Python side builds the models as a PyTorch user does (open_clip image tower, U-Net
 * nn.Module, same weights) instead of loading the TorchScript files; --bf16: both sides under bf16
 * autocast (the addon's image tower and segmenter, `cxrmask serve --bf16`; the Python models).
 * Writes bench/out/serve.json (--out: the synthetic JPEGs and serve.json there). The GPU run of the
 * real-size presets is in scripts/gpu-check.mjs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClipModel } from '../ts/model/clip.js';
import { DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT } from '../ts/model/prompts.js';
import { Segmenter } from '../ts/model/segmenter.js';
import { loadTokenizer } from '../ts/model/tokenizer.js';
import { encodePrompts } from '../ts/model/zeroshot.js';
import { setThreads } from '../ts/native.js';
import { MaskingPredictor } from '../ts/service/predictor.js';
import { synthesize } from '../ts/synth/synthesize.js';
import { benchDir, pythonExe, root } from './common.js';

const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '16' },
    reps: { type: 'string', default: '2' },
    width: { type: 'string', default: '1024' },
    height: { type: 'string', default: '1280' },
    model: { type: 'string', default: 'models/tiny' },
    segmenter: { type: 'string', default: 'models/seg-tiny' },
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string' },
    python: { type: 'string' },
    out: { type: 'string', default: join(benchDir, 'out') },
    eager: { type: 'boolean', default: false },
    bf16: { type: 'boolean', default: false },
    'max-batch': { type: 'string' },
  },
});
const N = Number(a.n);
const REPS = Number(a.reps);
const device = a.device as 'cpu' | 'cuda';
const CONCURRENCY = [1, 8];
if (a.threads) setThreads(Number(a.threads));

interface Stats {
  p50Ms: number;
  p95Ms: number;
  imagesPerSecond: number;
  requests: number;
}
function stats(ms: number[], wallS: number): Stats {
  const s = [...ms].sort((x, y) => x - y);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { p50Ms: q(0.5), p95Ms: q(0.95), imagesPerSecond: ms.length / wallS, requests: ms.length };
}

/** Latencies and busy wall time of one path, summed over the rounds. */
interface Samples {
  ms: number[];
  wallS: number;
}
const samples = (): Samples => ({ ms: [], wallS: 0 });

/** One pass over the images with `c` requests in flight, added to `into`. */
async function pass(c: number, images: Buffer[], send: (b: Buffer) => Promise<void>, into?: Samples) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (next < images.length) {
        const b = images[next++]!;
        const t = performance.now();
        await send(b);
        into?.ms.push(performance.now() - t);
      }
    }),
  );
  if (into) into.wallS += (performance.now() - t0) / 1000;
}

// 1. Inputs: N synthetic frontal JPEGs at a realistic size (made once, reused).
const dataDir = join(a.out, `serve-${a.width}x${a.height}-${N}`);
mkdirSync(a.out, { recursive: true });
const synth = await synthesize({
  out: dataDir,
  n: Math.ceil(N * 1.6),
  seed: 21,
  width: Number(a.width),
  height: Number(a.height),
  // big images render in worker threads when the machine has cores to spare
  workers: Math.max(0, Math.min(os.availableParallelism(), 16) - 1),
  force: true, // the bench's own scratch folder, made before synth marked its trees
});
const files = synth.images
  .filter((im) => im.view === 'PA' || im.view === 'AP')
  .slice(0, N)
  .map((im) => join(synth.mimicRoot, im.path));
const images = files.map((f) => readFileSync(f));
process.stderr.write(`[serve] ${images.length} JPEGs ${a.width}×${a.height}, ${REPS} passes each\n`);

// 2. In process: the library call a Node service makes.
const bf16 = a.bf16 ? { bf16: true } : {};
const segmenter = await Segmenter.load(a.segmenter, { device, ...bf16 });
// Timing only: an untrained export segments as fast as a trained one.
const predictor = await MaskingPredictor.load({
  modelDir: a.model,
  device,
  segmenter,
  untrained: true,
  ...bf16,
  ...(a['max-batch'] ? { maxBatch: Number(a['max-batch']) } : {}),
});
const call = async (b: Buffer) => {
  const r = await predictor.predict(b, null, { overlay: true });
  if (r.maskSource !== 'segmenter' || !r.overlayPng) throw new Error('no predicted-mask answer');
};

// 3. Over HTTP: `cxrmask serve` in a child process, the client here.
const serveArgs = [
  'serve',
  '--model',
  a.model,
  '--segmenter',
  a.segmenter,
  '--allow-untrained',
  '--device',
  device,
];
serveArgs.push('--port', '0', '--max-queue', '64', '--log', 'error');
if (a.threads) serveArgs.push('--threads', a.threads);
if (a.bf16) serveArgs.push('--bf16');
if (a['max-batch']) serveArgs.push('--max-batch', a['max-batch']);
const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'ts/cli/main.ts'), ...serveArgs], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const base = await new Promise<string>((resolve, reject) => {
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
    const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
    if (m) resolve(m[1]!);
  });
  child.once('exit', (code) => reject(new Error(`cxrmask serve exited ${code}`)));
});
const post = async (b: Buffer) => {
  const r = await fetch(`${base}/predict?overlay=1`, { method: 'POST', body: new Uint8Array(b) });
  const j = (await r.json()) as { maskSource?: string };
  if (r.status !== 200 || j.maskSource !== 'segmenter') throw new Error(`HTTP ${r.status}`);
};

// 4. Python on the same TorchScript files (zero-shot text features from the same model, computed here).
const clip = await ClipModel.load(a.model, { device });
const bank = await encodePrompts(clip, loadTokenizer(a.model), DEFAULT_PROMPT, DEFAULT_NEGATIVE_PROMPT);
const bankPath = join(a.out, 'serve-bank.json');
writeFileSync(
  bankPath,
  JSON.stringify({
    size: segmenter.size,
    positive: [...bank.positive],
    negative: [...bank.negative!],
    logitScale: clip.logitScale,
  }),
);
await clip.dispose();
const segMeta = JSON.parse(readFileSync(join(a.segmenter, 'model.json'), 'utf8')) as {
  files?: { model?: string };
};
let pythonInfo: { threads: number; torch: string } | null = null;
const pyArgs = [join(benchDir, 'serve_torch.py'), '--clip', join(a.model, 'clip.pt')];
pyArgs.push('--seg', join(a.segmenter, segMeta.files?.model ?? 'seg.pt'), '--bank', bankPath);
pyArgs.push('--device', device, ...(a.threads ? ['--threads', a.threads] : []));
pyArgs.push(...(a.eager ? ['--eager'] : []), ...(a.bf16 ? ['--bf16'] : []), ...files);
/** One Python pass (its own process, its own warm-up), added to `into`; false when Python failed. */
function pythonPass(into: Samples): boolean {
  const r = spawnSync(pythonExe(a.python), pyArgs, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    process.stderr.write(`[serve] Python side failed (skipped): ${r.stderr.slice(-400)}\n`);
    return false;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    seconds: number[];
    imagesPerSecond: number;
    threads: number;
    torch: string;
  };
  into.ms.push(...out.seconds.map((x) => x * 1000));
  into.wallS += out.seconds.length / out.imagesPerSecond;
  pythonInfo = { threads: out.threads, torch: out.torch };
  return true;
}

// Rounds interleave the paths, so that load from other processes on a shared machine falls on all of
// them alike; each round is one pass over the images per path.
await pass(1, images.slice(0, 4), call); // warm-up (TorchScript profiles the first calls)
await pass(1, images.slice(0, 4), post);
const acc: Record<string, Samples> = {};
for (const c of CONCURRENCY) {
  acc[`inProcess_c${c}`] = samples();
  acc[`http_c${c}`] = samples();
}
let pySamples: Samples | null = samples();
for (let r = 0; r < REPS; r++) {
  if (pySamples && !pythonPass(pySamples)) pySamples = null;
  for (const c of CONCURRENCY) await pass(c, images, call, acc[`inProcess_c${c}`]);
  for (const c of CONCURRENCY) await pass(c, images, post, acc[`http_c${c}`]);
}
const batches = predictor.batchCounts;
await predictor.dispose();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
const inProcess: Record<string, Stats> = {};
const http: Record<string, Stats> = {};
for (const c of CONCURRENCY) {
  const ip = acc[`inProcess_c${c}`]!;
  const h = acc[`http_c${c}`]!;
  inProcess[`c${c}`] = stats(ip.ms, ip.wallS);
  http[`c${c}`] = stats(h.ms, h.wallS);
}
const pyStats = pySamples ? stats(pySamples.ms, pySamples.wallS) : null;
const python = pythonInfo as { threads: number; torch: string } | null;

// 5. Report.
const rows: string[] = [
  '| path | concurrency | p50 ms | p95 ms | images/s | vs Python img/s |',
  '|---|---|---|---|---|---|',
];
const ratio = (s: Stats) =>
  pyStats ? `${(s.imagesPerSecond / pyStats.imagesPerSecond).toFixed(2)}×` : 'n/a';
const line = (name: string, c: string, s: Stats) =>
  rows.push(
    `| ${name} | ${c} | ${s.p50Ms.toFixed(1)} | ${s.p95Ms.toFixed(1)} | ${s.imagesPerSecond.toFixed(1)} | ${ratio(s)} |`,
  );
for (const c of CONCURRENCY) line('in-process', String(c), inProcess[`c${c}`]!);
for (const c of CONCURRENCY) line('HTTP', String(c), http[`c${c}`]!);
if (pyStats && python) line(`Python (torch ${python.torch}, ${python.threads} threads)`, '1', pyStats);
const result = {
  bench: 'serve',
  device,
  model: a.model,
  segmenter: a.segmenter,
  images: images.length,
  reps: REPS,
  size: `${a.width}x${a.height}`,
  inProcess,
  http,
  /** In-process model batches over every pass (warm-up included): calls ÷ batches = mean batch. */
  batches,
  python: pyStats ? { ...pyStats, ...python, eager: a.eager, bf16: a.bf16 } : null,
  loadAverage: os.loadavg(),
  ratios: pyStats
    ? Object.fromEntries(
        CONCURRENCY.flatMap((c) => [
          [`inProcess_c${c}_vs_python`, inProcess[`c${c}`]!.imagesPerSecond / pyStats.imagesPerSecond],
          [`http_c${c}_vs_python`, http[`c${c}`]!.imagesPerSecond / pyStats.imagesPerSecond],
        ]),
      )
    : null,
};
writeFileSync(join(a.out, 'serve.json'), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(
  `segment + overlay + classify per ${a.width}×${a.height} JPEG (${device}, ${a.model}, ${a.segmenter}; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores)\n${rows.join('\n')}\nin-process model batches: ${batches.calls} calls in ${batches.batches} (largest ${batches.largest})\n`,
);
