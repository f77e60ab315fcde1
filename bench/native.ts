/**
 * Addon vs Python PyTorch on the same TorchScript file, batch and thread count, in one run:
 * image-encoder forward and classifier train step (img/s), fp32 and bf16 autocast (when the CPU has
 * AVX512-BF16/AMX or the device is CUDA). Prints a table of ratios; --json writes bench/out/native.json.
 *
 *   node --import tsx bench/native.ts --model models/biomedclip --batch 8 --threads 2
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Classifier } from '../ts/model/classifier.js';
import { ClipModel } from '../ts/model/clip.js';
import { diagnostics, packageRoot, setThreads } from '../ts/native.js';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: join(packageRoot, 'models', 'biomedclip') },
    batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '2' },
    iters: { type: 'string', default: '3' },
    device: { type: 'string', default: 'cpu' },
    python: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

type Mode = 'fp32' | 'bf16';
interface Side {
  forward_img_s: number;
  train_img_s: number;
}

function pythonExe(): string {
  if (opt.python) return opt.python;
  if (process.env['CXRMASK_PYTHON']) return process.env['CXRMASK_PYTHON'];
  const env = join(packageRoot, 'build', 'env.json');
  if (existsSync(env)) return (JSON.parse(readFileSync(env, 'utf8')) as { python: string }).python;
  return 'python3';
}

async function timed(fn: () => Promise<unknown>, warmup: number, iters: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const t = performance.now();
  for (let i = 0; i < iters; i++) await fn();
  return (performance.now() - t) / 1000 / iters;
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
  const diag = diagnostics();
  const bf16 = device === 'cuda' || diag.cpu.bf16;
  const modes: Mode[] = bf16 ? ['fp32', 'bf16'] : ['fp32'];
  const meta = JSON.parse(readFileSync(join(opt.model!, 'model.json'), 'utf8')) as {
    imageSize: number;
    preset: string;
  };
  const s = meta.imageSize;
  process.stderr.write(
    `[bench] ${meta.preset} ${opt.model}, batch ${batch}, ${threads} threads, ${device}, modes ${modes.join('+')}, torch ${diag.torch.version}, BLAS ${diag.blas.blas}\n`,
  );

  // --- addon ---------------------------------------------------------------------------------
  const x = new Float32Array(batch * 3 * s * s);
  for (let i = 0; i < x.length; i++) x[i] = 0.5 * Math.sin(0.37 * i);
  const y = Float32Array.from({ length: batch * 5 }, (_, i) => i % 2);
  const addon: Record<string, Side> = {};
  const clip = await ClipModel.load(opt.model!, { device });
  for (const mode of modes) {
    const clf = await Classifier.create({ modelDir: opt.model!, device, bf16: mode === 'bf16', seed: 0 });
    const tf = await timed(() => clip.encodeImage(x, batch, { bf16: mode === 'bf16' }), warmup, iters);
    const tt = await timed(() => clf.trainStep(x, batch, y), warmup, iters);
    clf.dispose();
    addon[mode] = { forward_img_s: batch / tf, train_img_s: batch / tt };
    process.stderr.write(`[bench] addon ${mode}: ${JSON.stringify(addon[mode])}\n`);
  }
  clip.dispose();

  // --- Python PyTorch on the same file (run after, so the two never share the CPU) -----------
  const py = spawnSync(
    pythonExe(),
    [
      join(packageRoot, 'bench', 'native_torch.py'),
      '--model',
      clipPath,
      '--batch',
      String(batch),
      '--threads',
      String(threads),
      '--warmup',
      String(warmup),
      '--iters',
      String(iters),
      '--image-size',
      String(s),
      '--modes',
      modes.join(','),
      '--device',
      device,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (py.status !== 0)
    throw new Error(`Python bench failed (${py.status}); is torch importable by ${pythonExe()}?`);
  const python = JSON.parse(py.stdout.trim().split('\n').pop()!) as {
    torch: string;
    results: Record<string, Side>;
  };

  // --- report ----------------------------------------------------------------------------------
  const rows: string[][] = [['metric', 'mode', 'addon img/s', 'python img/s', 'addon/python']];
  const ratios: Record<string, number> = {};
  for (const mode of modes) {
    for (const k of ['forward_img_s', 'train_img_s'] as const) {
      const a = addon[mode]![k];
      const p = python.results[mode]![k];
      ratios[`${k.replace('_img_s', '')}_${mode}`] = a / p;
      rows.push([k.replace('_img_s', ''), mode, a.toFixed(2), p.toFixed(2), `${(a / p).toFixed(2)}x`]);
    }
  }
  if (bf16) {
    const r = addon['bf16']!.forward_img_s / python.results['fp32']!.forward_img_s;
    ratios['forward_bf16_addon_vs_fp32_python'] = r;
    rows.push(['forward', 'addon bf16 / python fp32', '', '', `${r.toFixed(2)}x`]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i]!)).join('  ')}\n`);
  const result = {
    model: opt.model,
    batch,
    threads,
    device,
    torch: diag.torch.version,
    addon,
    python: python.results,
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
