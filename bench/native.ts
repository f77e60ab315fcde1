/**
 * Addon vs Python PyTorch, same batch and thread count, in one run: image-encoder forward and
 * classifier train step (img/s), fp32 and bf16 autocast (when the CPU has AVX512-BF16/AMX or the device
 * is CUDA). Two Python sides: the eager open_clip image tower (what a PyTorch user runs; the headline
 * ratio) and the same TorchScript file the addon runs (a check of the binding). Prints a table of
 * ratios; --json writes bench/out/native.json. --graph-optimize forces the addon's TorchScript
 * graph-executor optimisation on for training too (default 'auto': inference only; docs/native.md).
 * The addon is fed as the real job feeds it (--input records, the default): cache records (uint8 gray +
 * contour planes) in addon-owned host memory (`hostBytes`, pinned on CUDA), which ops borrow without a
 * copy and turn into normalised images where the model runs. --input float hands it float32 images
 * instead (copied at the call, checked for NaN on the host), the path of a caller without a cache.
 *
 *   node --import tsx bench/native.ts --model models/biomedclip [--batch 4 --threads 2 --warmup 1 --iters 3]
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { resolvePreprocess } from '../ts/images/preprocess.js';
import { paintTable } from '../ts/masks/overlay.js';
import { Classifier } from '../ts/model/classifier.js';
import { ClipModel } from '../ts/model/clip.js';
import { hostBytes, type ImageInput, type RecordBatch } from '../ts/model/records.js';
import { diagnostics, packageRoot, setGraphOptimize, setThreads } from '../ts/native.js';
import { median, pythonExe } from './common.js';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: join(packageRoot, 'models', 'biomedclip') },
    batch: { type: 'string', default: '4' },
    threads: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '1' },
    iters: { type: 'string', default: '3' },
    // median over iters; each addon call is followed by the same Python call
    device: { type: 'string', default: 'cpu' },
    python: { type: 'string' },
    json: { type: 'boolean', default: false },
    'graph-optimize': { type: 'boolean', default: false },
    input: { type: 'string', default: 'records' },
  },
});

const IMPLS = ['eager', 'script'] as const;
type Impl = (typeof IMPLS)[number];

type Mode = 'fp32' | 'bf16';
interface Side {
  forward_img_s: number;
  train_img_s: number;
}

/** bench/native_torch.py --serve: one timed Python call per request line. */
class PythonSide {
  private constructor(
    private readonly proc: ChildProcessByStdio<Writable, Readable, null>,
    private readonly lines: AsyncIterator<string>,
  ) {}

  static async start(exe: string, args: string[]): Promise<PythonSide> {
    const proc = spawn(exe, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const side = new PythonSide(proc, createInterface({ input: proc.stdout })[Symbol.asyncIterator]());
    const first = await side.lines.next();
    if (first.done) throw new Error(`Python bench did not start; is torch importable by ${exe}?`);
    return side;
  }

  async time(metric: string, mode: string, impl: Impl): Promise<number> {
    this.proc.stdin.write(`${metric} ${mode} ${impl}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error('Python bench exited');
    return (JSON.parse(r.value) as { seconds: number }).seconds;
  }

  close(): void {
    this.proc.stdin.end();
  }
}

/** float32 [n,3,S,S] images: what a caller without an image cache hands over. */
function floatBatch(n: number, s: number): Float32Array {
  const x = new Float32Array(n * 3 * s * s);
  for (let i = 0; i < x.length; i++) x[i] = 0.5 * Math.sin(0.37 * i);
  return x;
}

/** n cache records in addon-owned host memory, as Cache.recordBatch hands them to the real job. */
function recordBatch(n: number, s: number): RecordBatch {
  const plane = s * s;
  const records = hostBytes(n * 2 * plane);
  for (let i = 0; i < n; i++) {
    const base = i * 2 * plane;
    for (let p = 0; p < plane; p++) {
      records[base + p] = (128 + 100 * Math.sin(0.37 * p + i)) | 0;
      // a contour pixel on ~3 % of the mask plane, every region bit mix
      if ((p * 2654435761) % 97 < 3) records[base + plane + p] = 1 + (p % 7);
    }
  }
  const pp = resolvePreprocess({});
  return {
    kind: 'records',
    records,
    size: s,
    pixels: { mean: [...pp.mean], std: [...pp.std], paint: paintTable({}), original: true, masked: false },
  };
}

async function main() {
  const batch = Number(opt.batch);
  const threads = Number(opt.threads);
  const warmup = Number(opt.warmup);
  const iters = Number(opt.iters);
  const device = opt.device as 'cpu' | 'cuda';
  const clipPath = join(opt.model!, 'clip.pt');
  if (!existsSync(clipPath))
    throw new Error(
      `${clipPath} missing: python tools/export_biomedclip.py --random-init biomedclip --out ${opt.model} --seed 0`,
    );
  setThreads(threads);
  setGraphOptimize(opt['graph-optimize'] ? true : 'auto');
  const diag = diagnostics();
  const bf16 = device === 'cuda' || diag.cpu.bf16;
  const modes: Mode[] = bf16 ? ['fp32', 'bf16'] : ['fp32'];
  const meta = JSON.parse(readFileSync(join(opt.model!, 'model.json'), 'utf8')) as {
    imageSize: number;
    preset: string;
  };
  const s = meta.imageSize;
  process.stderr.write(
    `[bench] ${meta.preset} ${opt.model}, batch ${batch}, ${threads} threads, ${device}, input ${opt.input}, modes ${modes.join('+')}, torch ${diag.torch.version}, BLAS ${diag.blas.blas}\n`,
  );

  // Python PyTorch on the same file runs as a server; each timed addon call is followed by the same
  // timed Python call, so both see the same machine load (medians over the iterations).
  const py = await PythonSide.start(pythonExe(opt.python), [
    join(packageRoot, 'bench', 'native_torch.py'),
    '--serve',
    '--model',
    clipPath,
    '--batch',
    String(batch),
    '--threads',
    String(threads),
    '--image-size',
    String(s),
    '--device',
    device,
    '--eager',
  ]);
  if (opt.input !== 'records' && opt.input !== 'float')
    throw new Error(`--input must be records or float, got ${opt.input}`);
  const x: ImageInput = opt.input === 'records' ? recordBatch(batch, s) : floatBatch(batch, s);
  const y = Float32Array.from({ length: batch * 5 }, (_, i) => i % 2);
  const addon: Record<string, Side> = {};
  const python: Record<Impl, Record<string, Side>> = { eager: {}, script: {} };
  const clip = await ClipModel.load(opt.model!, { device });
  try {
    for (const mode of modes) {
      const clf = await Classifier.create({ modelDir: opt.model!, device, bf16: mode === 'bf16', seed: 0 });
      const fns = {
        forward: () => clip.encodeImage(x, batch, { bf16: mode === 'bf16' }),
        train: () => clf.trainStep(x, batch, y),
      };
      const a: Record<string, number> = {};
      const p: Record<Impl, Record<string, number>> = { eager: {}, script: {} };
      for (const metric of ['forward', 'train'] as const) {
        for (let i = 0; i < warmup; i++) {
          await fns[metric]();
          for (const impl of IMPLS) await py.time(metric, mode, impl);
        }
        const ta: number[] = [];
        const tp: Record<Impl, number[]> = { eager: [], script: [] };
        for (let i = 0; i < iters; i++) {
          const t = performance.now();
          await fns[metric]();
          ta.push((performance.now() - t) / 1000);
          for (const impl of IMPLS) tp[impl].push(await py.time(metric, mode, impl));
        }
        a[metric] = batch / median(ta);
        for (const impl of IMPLS) p[impl][metric] = batch / median(tp[impl]);
        const fmt = (v: number[]) => v.map((t) => t.toFixed(2)).join(' ');
        process.stderr.write(
          `[bench] ${mode} ${metric}: addon ${fmt(ta)} s, eager ${fmt(tp.eager)} s, script ${fmt(tp.script)} s\n`,
        );
      }
      clf.dispose();
      addon[mode] = { forward_img_s: a['forward']!, train_img_s: a['train']! };
      for (const impl of IMPLS)
        python[impl][mode] = { forward_img_s: p[impl]['forward']!, train_img_s: p[impl]['train']! };
    }
  } finally {
    clip.dispose();
    py.close();
  }

  // --- report ----------------------------------------------------------------------------------
  const rows: string[][] = [
    ['metric', 'mode', 'addon img/s', 'eager img/s', 'script img/s', 'addon/eager', 'addon/script'],
  ];
  const ratios: Record<string, number> = {};
  for (const mode of modes) {
    for (const k of ['forward_img_s', 'train_img_s'] as const) {
      const a = addon[mode]![k];
      const pe = python.eager[mode]![k];
      const ps = python.script[mode]![k];
      const name = k.replace('_img_s', '');
      ratios[`${name}_${mode}_vs_eager`] = a / pe;
      ratios[`${name}_${mode}_vs_script`] = a / ps;
      rows.push([
        name,
        mode,
        a.toFixed(2),
        pe.toFixed(2),
        ps.toFixed(2),
        `${(a / pe).toFixed(2)}x`,
        `${(a / ps).toFixed(2)}x`,
      ]);
    }
  }
  if (bf16) {
    const r = addon['bf16']!.forward_img_s / python.eager['fp32']!.forward_img_s;
    ratios['forward_bf16_addon_vs_fp32_eager'] = r;
    rows.push(['forward', 'addon bf16 / eager fp32', '', '', '', `${r.toFixed(2)}x`, '']);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i]!)).join('  ')}\n`);
  const result = {
    model: opt.model,
    batch,
    threads,
    device,
    torch: diag.torch.version,
    graphOptimize: opt['graph-optimize'] ? true : 'auto',
    input: opt.input,
    loadavg: existsSync('/proc/loadavg') ? readFileSync('/proc/loadavg', 'utf8').trim() : null,
    addon,
    python,
    ratios,
  };
  if (opt.json) {
    mkdirSync(join(packageRoot, 'bench', 'out'), { recursive: true });
    writeFileSync(join(packageRoot, 'bench', 'out', 'native.json'), JSON.stringify(result, null, 2));
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
