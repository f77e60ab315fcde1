// The sections of the GPU check, one per process: `node scripts/gpu-check-sections.mjs NAME`. Run by
// scripts/gpu-check.mjs, which gives each its deadline (CXRMASK_GPU_CHECK_SECTION_DEADLINE, epoch ms)
// and a file for its result (CXRMASK_GPU_CHECK_RESULT: {status, note, rows, facts}). A section prints
// `ok  ...` / `FAIL ...` lines; any FAIL makes it fail. Children get the time the section has left and
// are killed with their descendants when it runs out. Parity runs with TF32 off; speed with the defaults.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '..', '..');
function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}
const dist = (p) => import(join(root, 'dist', p));
// $PYTHON (gpu-check.sh sets it), else the venv scripts/setup.sh made (build/env.json), else python3
const python = process.env.PYTHON ?? readJson(join(root, 'build', 'env.json'))?.python ?? 'python3';
// CXRMASK_GPU_CHECK_DEVICE=cpu: the dry run of the same sections on CPU (tiny presets, small sizes).
const dev = process.env.CXRMASK_GPU_CHECK_DEVICE ?? 'cuda';
const cuda = dev === 'cuda';
const work = resolve(process.env.CXRMASK_GPU_CHECK_WORK ?? join(root, '.cache', 'gpu-work'));
const deadline = Number(process.env.CXRMASK_GPU_CHECK_SECTION_DEADLINE ?? Date.now() + 600_000);
const resultFile = process.env.CXRMASK_GPU_CHECK_RESULT;
const tiny = process.env.CXRMASK_TEST_MODEL ?? join(root, 'models/tiny');
const segTiny = process.env.CXRMASK_TEST_SEGMENTER ?? join(root, 'models/seg-tiny');
// The exports the speed sections use: real-size presets on CUDA, the tiny ones in the dry run.
const clipDir = join(work, 'models', 'clip');
const segDir = join(work, 'models', 'seg');
const clipPreset = cuda ? 'biomedclip' : 'tiny';
const segPreset = cuda ? 'unet' : 'unet-tiny';
const threads = Number(process.env.CXRMASK_GPU_CHECK_THREADS ?? Math.min(16, availableParallelism()));
const tsx = ['--import', 'tsx'];

const secondsLeft = () => (deadline - Date.now()) / 1000;
let failures = 0;
const result = { status: 'ok', note: '', rows: [], facts: {} };
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
  return ok;
};
const notes = [];
const f32 = (dir, blob) => {
  const b = readFileSync(join(dir, blob.file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const median = (v) => {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** The last line of `text` that parses as JSON, or null (a child that printed nothing is no crash). */
function lastJson(text) {
  for (const line of String(text ?? '').trim().split('\n').reverse()) {
    try {
      return JSON.parse(line);
    } catch {}
  }
  return null;
}
/** Descendants of pid (from /proc), deepest first. */
function descendants(pid) {
  const kids = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch {}
  }
  const out = [];
  const walk = (p) => {
    for (const k of kids.get(p) ?? []) {
      walk(k);
      out.push(k);
    }
  };
  walk(pid);
  return out;
}
/**
 * Runs a child with the time this section has left (minus `reserveS` for what follows), stdout
 * captured (and echoed), stderr passed through; on timeout the child and its descendants are killed.
 */
function run(cmd, args, { reserveS = 5, capS = Infinity, env } = {}) {
  const limitS = Math.max(1, Math.min(capS, secondsLeft() - reserveS));
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let stdout = '';
    let timedOut = false;
    child.stdout.on('data', (d) => {
      stdout += d;
      process.stdout.write(d);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      for (const p of [...descendants(child.pid), child.pid]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {}
      }
    }, limitS * 1000);
    const finish = (status, error) => {
      clearTimeout(timer);
      const seconds = (performance.now() - t0) / 1000;
      const why = timedOut ? `timed out after ${limitS.toFixed(0)} s` : error ? error.message : `exit ${status}`;
      done({ ok: !timedOut && !error && status === 0, status, stdout, seconds, why });
    };
    child.once('error', (e) => finish(null, e));
    child.once('close', (code, signal) => finish(code ?? signal, null));
  });
}
const row = (r) => {
  const ratio = r.addon > 0 && r.eager > 0 ? r.addon / r.eager : null;
  const full = { work: r.work, unit: r.unit, dtype: r.dtype, batch: r.batch, addon: r.addon ?? null, eager: r.eager ?? null, ratio, device: dev, ...(r.note ? { note: r.note } : {}) };
  result.rows.push(full);
  const f = (v) => (v == null ? 'n/a' : v.toFixed(1));
  console.log(`row  ${r.work} [${r.dtype}, batch ${r.batch}]: addon ${f(r.addon)} ${r.unit}, eager ${f(r.eager)}, ratio ${ratio ? `${ratio.toFixed(2)}x` : 'n/a'}${r.note ? ` (${r.note})` : ''}`);
};
const needModels = () => {
  const ok = existsSync(join(clipDir, 'clip.pt')) && existsSync(join(segDir, 'seg.pt'));
  check(ok, `exports present (${clipPreset} in ${clipDir}, ${segPreset} in ${segDir}; made by the export section)`);
  return ok;
};

// --- sections ----------------------------------------------------------------------------------
const sections = {
  async env() {
    const native = await dist('native.js');
    const d = native.diagnostics();
    console.log(JSON.stringify({ torch: d.torch, cuda: d.cuda, blas: d.blas.blas, threads: d.threads, addon: d.addonPath }));
    result.facts.torch = d.torch.version;
    result.facts.device = cuda ? d.cuda.devices.map((x) => x.name).join(', ') || 'cuda (no device)' : `cpu (${d.cpu.capability || 'unknown'})`;
    result.facts.tf32Default = d.cuda.tf32;
    if (cuda) check(d.cuda.available, `CUDA available (${result.facts.device}; cuDNN ${d.cuda.cudnn})`);
    native.setTf32(false);
    const off = native.diagnostics().cuda.tf32;
    check(!off.cudnn && !off.cublas, `setTf32(false) turns TF32 off (cuDNN ${off.cudnn}, cuBLAS ${off.cublas}; default cuDNN ${d.cuda.tf32.cudnn}, cuBLAS ${d.cuda.tf32.cublas})`);
    notes.push(`${result.facts.device}, torch ${d.torch.version}, addon via ${d.torch.linkedVia}`);
  },

  // Parity of the addon on the device against the Python CPU references and the addon on CPU, TF32 off.
  async parity() {
    const native = await dist('native.js');
    native.setTf32(false);
    console.log('TF32 off for the parity checks (cuDNN and cuBLAS full float32)');
    notes.push('TF32 off');
    const { ClipModel } = await dist('model/clip.js');
    const { Classifier } = await dist('model/classifier.js');
    const { loadTokenizer } = await dist('model/tokenizer.js');
    const ref = JSON.parse(readFileSync(join(tiny, 'reference.json'), 'utf8'));
    const clip = await ClipModel.load(tiny, { device: dev });
    check(clip.device.startsWith(dev), `model on ${clip.device}`);
    const n = ref.images.shape[0];
    const img = await clip.encodeImage(f32(tiny, ref.images), n);
    const dImg = maxDiff(img, f32(tiny, ref.imageEmbeddings));
    check(dImg <= 1e-4, `image embeddings on ${dev} vs Python CPU reference: max|diff| ${dImg.toExponential(2)} (<= 1e-4)`);
    const ids = loadTokenizer(tiny).encode(ref.prompts);
    const dTxt = maxDiff(await clip.encodeText(ids, ref.prompts.length), f32(tiny, ref.textEmbeddings));
    check(dTxt <= 1e-4, `text embeddings on ${dev}: max|diff| ${dTxt.toExponential(2)} (<= 1e-4)`);
    const imgBf16 = await clip.encodeImage(f32(tiny, ref.images), n, { bf16: true });
    check(imgBf16.every(Number.isFinite), `bf16 autocast forward on ${dev} (max|diff| vs fp32 ${maxDiff(imgBf16, img).toExponential(2)})`);
    await clip.dispose();

    // cache records painted + normalised on the device == on the CPU
    const { hostBytes, recordsToImages } = await dist('model/records.js');
    const { paintTable } = await dist('masks/overlay.js');
    const s0 = 224;
    const rn = 4;
    const plane = s0 * s0;
    const rec = hostBytes(rn * 2 * plane);
    for (let i = 0; i < rec.length; i++) {
      const p = i % (2 * plane);
      rec[i] = p < plane ? (i * 2654435761) % 251 : (i * 40503) % 97 < 5 ? 1 + ((i >> 3) % 7) : 0;
    }
    const pixels = { mean: [0.48, 0.46, 0.41], std: [0.27, 0.26, 0.28], paint: paintTable({ alpha: 0.6 }), original: true, masked: true };
    const batch = (device) => recordsToImages({ kind: 'records', records: rec, size: s0, pixels }, rn, { device });
    const dRec = maxDiff(await batch(dev), await batch('cpu'));
    check(dRec <= 1e-6, `records painted + normalised on ${dev} vs CPU: max|diff| ${dRec.toExponential(2)} (<= 1e-6)`);

    // training, and a state saved on the device loading on the CPU
    const bs = 8;
    const x = Float32Array.from({ length: bs * 3 * s0 * s0 }, (_, i) => (Math.floor(i / (3 * s0 * s0)) % 2 ? 0.6 : -0.6) + 0.2 * Math.sin(0.37 * i));
    const y = Float32Array.from({ length: bs * 5 }, (_, i) => ((Math.floor(i / 5) % 2) + (i % 5)) % 2);
    for (const bf16 of [false, true]) {
      const c = await Classifier.create({ modelDir: tiny, device: dev, lrEncoder: 1e-3, lrHead: 1e-2, gradClip: 1, bf16, seed: 1 });
      const losses = [];
      for (let i = 0; i < 6; i++) losses.push((await c.trainStep(x, bs, y)).loss);
      check(losses[5] < losses[0], `train ${bf16 ? 'bf16' : 'fp32'} on ${dev}: loss ${losses[0].toFixed(4)} -> ${losses[5].toFixed(4)} (bf16Active ${c.bf16Active})`);
      if (!bf16) {
        const path = join(mkdtempIn('state'), 'state.pt');
        await c.save(path);
        const onCpu = await Classifier.create({ modelDir: tiny, device: 'cpu', lrEncoder: 1e-3, lrHead: 1e-2, gradClip: 1, seed: 9 });
        await onCpu.load(path);
        const dp = maxDiff(await onCpu.predict(x, bs), await c.predict(x, bs));
        check(dp < 1e-4, `state saved on ${dev} loads on CPU: prediction max|diff| ${dp.toExponential(2)} (< 1e-4)`);
        await onCpu.dispose();
      }
      await c.dispose();
    }

    // segmenter logits against the Python CPU reference
    const { Segmenter } = await dist('model/segmenter.js');
    const sref = JSON.parse(readFileSync(join(segTiny, 'reference.json'), 'utf8'));
    const seg = await Segmenter.load(segTiny, { device: dev });
    const dSeg = maxDiff(await seg.logits(f32(segTiny, sref.images), sref.images.shape[0]), f32(segTiny, sref.logits));
    check(dSeg <= 1e-3, `segmenter logits on ${dev} vs Python CPU reference: max|diff| ${dSeg.toExponential(2)} (<= 1e-3)`);
    await seg.dispose();

    // attribution maps on the device == on the CPU
    const a = await ClipModel.load(tiny, { device: dev });
    const b = await ClipModel.load(tiny, { device: 'cpu' });
    const an = 2;
    const ax = Float32Array.from({ length: an * 3 * s0 * s0 }, (_, i) => Math.sin(0.37 * i) * 1.2);
    const text = Float32Array.from({ length: 2 * a.embedDim }, (_, i) => Math.cos(0.9 * i));
    for (const o of [{ method: 'gradient' }, { method: 'smoothgrad', samples: 3, seed: 2 }, { method: 'ig', steps: 8, batch: 5 }]) {
      const [g, c] = [await a.attribute(ax, an, text, o), await b.attribute(ax, an, text, o)];
      const rel = maxDiff(g.map, c.map) / c.map.reduce((m, v) => Math.max(m, v), 0);
      check(rel <= 1e-3, `attribution ${o.method} on ${dev} vs CPU: relative max|diff| ${rel.toExponential(2)} (<= 1e-3)`);
    }
    const bf = await a.attribute(ax, an, text, { method: 'ig', steps: 8, bf16: true });
    check(bf.map.every(Number.isFinite), `attribution IG under bf16 autocast on ${dev}: finite`);
    await a.dispose();
    await b.dispose();
  },

  // The models the speed sections use, exported by the project's tools (random init).
  async export() {
    for (const [tool, preset, dir, file] of [
      ['export_biomedclip.py', clipPreset, clipDir, 'clip.pt'],
      ['segmenter_export.py', segPreset, segDir, 'seg.pt'],
    ]) {
      const meta = readJson(join(dir, 'model.json'));
      if (meta?.preset === preset && existsSync(join(dir, file))) {
        check(true, `${preset} export reused (${dir})`);
        continue;
      }
      rmSync(dir, { recursive: true, force: true });
      const r = await run(python, [join(root, 'tools', tool), '--random-init', preset, '--out', dir, '--seed', '0'], { reserveS: 2 });
      check(r.ok && existsSync(join(dir, file)), `export ${preset} (${r.seconds.toFixed(0)} s): ${r.why}`);
    }
    notes.push(`${clipPreset} + ${segPreset}`);
  },

  // Image forward and the JFT train step: bench/native.ts (addon vs eager open_clip, interleaved).
  async forward() {
    if (!needModels()) return;
    const batch = cuda ? 64 : 2;
    const out = join(root, 'bench', 'out', 'native.json');
    rmSync(out, { force: true });
    const args = [...tsx, join(root, 'bench/native.ts'), '--model', clipDir, '--device', dev, '--batch', String(batch)];
    args.push('--threads', String(threads), '--warmup', '3', '--iters', cuda ? '10' : '5', '--python', python, '--json');
    const r = await run(process.execPath, args);
    const res = r.ok ? readJson(out) : null;
    if (!check(res?.addon && res?.python?.eager, `bench/native.ts (${clipPreset}, batch ${batch}, ${r.seconds.toFixed(0)} s): ${r.why}`)) return;
    for (const mode of Object.keys(res.addon)) {
      row({ work: 'image forward', unit: 'img/s', dtype: mode, batch, addon: res.addon[mode].forward_img_s, eager: res.python.eager[mode]?.forward_img_s, note: `eager open_clip ${mode}; input: addon pinned uint8 cache records, eager pinned float32 images (non_blocking)` });
      row({ work: 'JFT train step', unit: 'img/s', dtype: mode, batch, addon: res.addon[mode].train_img_s, eager: res.python.eager[mode]?.train_img_s, note: `eager open_clip ${mode}, AdamW` });
    }
    if (cuda) check(!!res.addon.bf16, 'bf16 rows measured on CUDA');
  },

  // Cache records -> LP features and JFT training (bench/pipeline.ts --only model), then the
  // DataLoader a PyTorch user writes over the same uint8 cache (bench/pipeline_torch.py --cache).
  async pipeline() {
    if (!needModels()) return;
    const dir = join(work, 'pipeline');
    const json = join(dir, 'pipeline.json');
    rmSync(json, { force: true });
    const budget = secondsLeft();
    // two timed loops on each side plus data synthesis and cache build: a sixth of the budget each
    const seconds = cuda ? Math.max(5, Math.min(15, Math.floor(budget / 8))) : 2;
    const p = cuda
      ? { images: 256, width: 2000, height: 2500, fb: 256, tb: 64 }
      : { images: 16, width: 320, height: 384, fb: 8, tb: 8 };
    const args = [...tsx, join(root, 'bench/pipeline.ts'), '--only', 'model', '--skip-eager', '--model', clipDir, '--device', dev];
    args.push('--dir', dir, '--json', json, '--python', python, '--model-images', String(p.images), '--model-width', String(p.width));
    args.push('--model-height', String(p.height), '--feature-batch', String(p.fb), '--train-batch', String(p.tb), '--model-seconds', String(seconds));
    if (cuda) args.push('--bf16');
    // the eager side after it: two timed loops, worker start-up and an open_clip build
    const r = await run(process.execPath, args, { reserveS: 2 * seconds + 25 });
    const m = r.ok ? readJson(json)?.model : null;
    if (!check(m?.features?.imgPerSec > 0 && m?.train?.imgPerSec > 0, `bench/pipeline.ts --only model (${r.seconds.toFixed(0)} s): ${r.why}`)) return;
    const { paintTable } = await dist('masks/overlay.js');
    const cacheRoot = join(dir, `model-${p.width}x${p.height}-${p.images}`, 'cache');
    const workers = cuda ? Math.min(16, Math.max(1, threads - 2)) : 1;
    const pyArgs = [join(root, 'bench/pipeline_torch.py'), '--model', clipDir, '--cache', cacheRoot, '--paint', [...paintTable({})].join(',')];
    pyArgs.push('--device', dev, '--feature-batch', String(p.fb), '--train-batch', String(p.tb), '--seconds', String(seconds), '--workers', String(workers));
    if (cuda) pyArgs.push('--bf16');
    const e = await run(python, pyArgs, { reserveS: 2 });
    const eager = e.ok ? lastJson(e.stdout) : null;
    // the workers that ran: fewer than asked when /dev/shm cannot hold their batches in flight
    const used = eager?.workersUsed ? `${eager.workersUsed.features}/${eager.workersUsed.train} of ${workers}` : `${workers}`;
    check(eager?.features?.imgPerSec > 0, `bench/pipeline_torch.py --cache (DataLoader, ${used} workers, memmap, pinned, non_blocking; ${e.seconds.toFixed(0)} s): ${e.why}`);
    const dtype = cuda ? 'bf16' : 'fp32';
    const pct = (w) => (w == null ? 'n/a' : `${(100 * w).toFixed(1)} %`);
    row({ work: 'LP features from cache records', unit: 'rows/s', dtype, batch: p.fb, addon: m.features.rowsPerSec, eager: eager?.features?.rowsPerSec, note: `original + masked per record; GPU wait addon ${pct(m.features.waitFraction)}, eager ${pct(eager?.features?.waitFraction)}` });
    row({ work: 'pipeline epoch (records -> JFT train)', unit: 'img/s', dtype, batch: p.tb, addon: m.train.imgPerSec, eager: eager?.train?.imgPerSec, note: `GPU wait addon ${pct(m.train.waitFraction)}, eager ${pct(eager?.train?.waitFraction)} (${seconds} s timed each; DataLoader workers ${used})` });
    result.facts.gpuWait = { features: m.features.waitFraction, train: m.train.waitFraction };
    if (cuda) notes.push(`GPU wait ${pct(m.train.waitFraction)} (goal < 5 %)`);
  },

  // Integrated gradients: the addon vs eager open_clip, both under bf16 autocast on CUDA.
  async attribution() {
    if (!needModels()) return;
    const out = join(work, 'attribution.json');
    rmSync(out, { force: true });
    const [n, batch, steps] = cuda ? [8, 64, 32] : [2, 8, 8];
    const args = [...tsx, join(root, 'bench/attribution.ts'), '--model', clipDir, '--device', dev, '--methods', 'ig', '--eager'];
    args.push('--n', String(n), '--batch', String(batch), '--steps', String(steps), '--threads', String(threads), '--python', python, '--out', out);
    args.push('--warmup', cuda ? '2' : '1', '--iters', cuda ? '5' : '1', ...(cuda ? ['--bf16'] : []));
    const r = await run(process.execPath, args);
    const ig = r.ok ? readJson(out)?.rows?.find((x) => x.method === 'ig') : null;
    if (!check(ig?.addonImgS > 0 && ig?.torchImgS > 0, `bench/attribution.ts --methods ig --eager (${r.seconds.toFixed(0)} s): ${r.why}`)) return;
    row({ work: `attribution (IG, ${steps} steps)`, unit: 'img/s', dtype: cuda ? 'bf16' : 'fp32', batch, addon: ig.addonImgS, eager: ig.torchImgS, note: 'eager open_clip, torch.autograd.grad over batched path points' });
  },

  // Data parallel: gloo on CPU, NCCL on CUDA (both must be built in on CUDA), per-step all-reduce overhead.
  async distributed() {
    const { ProcessGroup } = await dist('model/process-group.js');
    const { freePort } = await dist('distributed/launch.js');
    const { Classifier } = await dist('model/classifier.js');
    const backends = ProcessGroup.backends();
    check(backends.gloo, `addon has the gloo backend (nccl: ${backends.nccl})`);
    if (cuda) check(backends.nccl, 'addon has the NCCL backend (built with the carried CUDA crt/cccl headers)');
    const timed = async (fn, iters) => {
      for (let i = 0; i < (cuda ? 3 : 1); i++) await fn();
      const t = performance.now();
      for (let i = 0; i < iters; i++) await fn();
      return (performance.now() - t) / iters;
    };
    const plans = [{ device: 'cpu', model: tiny, batch: 2, iters: 1, backend: 'gloo' }];
    if (cuda) {
      const model = existsSync(join(clipDir, 'clip.pt')) ? clipDir : tiny;
      // blocking wait is the addon's default (a stuck collective throws); without it the host does not
      // wait on each collective: the difference is what that choice costs a step
      plans.push({ device: 'cuda:0', model, batch: 32, iters: 20, backend: 'nccl', blockingWait: true });
      plans.push({ device: 'cuda:0', model, batch: 32, iters: 20, backend: 'nccl', blockingWait: false });
    }
    for (const p of plans) {
      if (!backends[p.backend]) continue;
      if (p.blockingWait !== undefined) process.env.TORCH_NCCL_BLOCKING_WAIT = p.blockingWait ? '1' : '0';
      try {
        const size = JSON.parse(readFileSync(join(p.model, 'model.json'), 'utf8')).imageSize;
        const xb = new Float32Array(p.batch * 3 * size * size).map((_, i) => Math.sin(i) * 0.5);
        const yb = new Float32Array(p.batch * 5).map((_, i) => i % 2);
        const g = await ProcessGroup.create({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: await freePort(), device: p.device, timeoutMs: 60_000 });
        const c = await Classifier.create({ modelDir: p.model, device: p.device, bf16: p.device !== 'cpu', seed: 0 });
        const plainMs = [];
        const groupedMs = [];
        for (let k = 0; k < 3; k++) {
          await c.attachGroup(null);
          plainMs.push(await timed(() => c.trainStep(xb, p.batch, yb), p.iters));
          await c.attachGroup(g);
          groupedMs.push(await timed(() => c.trainStep(xb, p.batch, yb), p.iters));
        }
        const [plain, grouped] = [median(plainMs), median(groupedMs)];
        const extra = grouped - plain;
        const wait = p.blockingWait === undefined ? '' : p.blockingWait ? ', blocking wait' : ', no blocking wait';
        check(g.backend === p.backend && Number.isFinite(extra), `data parallel (${g.backend}${wait}, 1 rank, ${p.model.split('/').pop()}, batch ${p.batch} on ${p.device}): step ${plain.toFixed(1)} -> ${grouped.toFixed(1)} ms, all-reduce overhead ${extra.toFixed(1)} ms/step (${((100 * extra) / plain).toFixed(1)} %)`);
        if (p.backend === 'nccl') notes.push(`NCCL${wait} overhead ${extra.toFixed(1)} ms/step`);
        await c.dispose();
        await g.close();
      } catch (e) {
        check(false, `data parallel ${p.backend} on ${p.device}: ${e.message}`);
      }
    }
    delete process.env.TORCH_NCCL_BLOCKING_WAIT;
  },

  // U-Net training step: the addon's Segmenter vs the U-Net nn.Module (bench/segmenter_torch.py).
  async segmenter() {
    if (!needModels()) return;
    const { Segmenter } = await dist('model/segmenter.js');
    const s = 224;
    const sb = cuda ? 64 : 4;
    const iters = cuda ? 10 : 2;
    const xs = Float32Array.from({ length: sb * 3 * s * s }, (_, i) => 0.5 * Math.sin(0.37 * i));
    const bits = Uint8Array.from({ length: sb * s * s }, (_, i) => ((i % (s * s)) % s < s / 2 ? 1 : 2));
    const dtypes = cuda ? ['bf16'] : ['fp32'];
    for (const dtype of dtypes) {
      const m = await Segmenter.load(segDir, { device: dev, bf16: dtype === 'bf16', gradClip: 1 });
      for (let i = 0; i < 2; i++) await m.trainStep(xs, sb, bits);
      const ts = [];
      for (let i = 0; i < iters; i++) {
        const t = performance.now();
        await m.trainStep(xs, sb, bits);
        ts.push((performance.now() - t) / 1000);
      }
      await m.predictMasks(xs, sb); // the first eval call plans and profiles: not timed
      const t = performance.now();
      await m.predictMasks(xs, sb);
      const predict = sb / ((performance.now() - t) / 1000);
      await m.dispose();
      const args = [join(root, 'bench/segmenter_torch.py'), '--model', segDir, '--batch', String(sb), '--device', dev];
      args.push('--iters', String(iters), '--threads', String(threads), ...(dtype === 'bf16' ? ['--bf16'] : []));
      const r = await run(python, args, { reserveS: 2 });
      const e = r.ok ? lastJson(r.stdout) : null;
      check(e?.trainImgPerSec > 0, `bench/segmenter_torch.py (eager U-Net ${segPreset}, ${dtype}; ${r.seconds.toFixed(0)} s): ${r.why}`);
      row({ work: `segmenter train (${segPreset})`, unit: 'img/s', dtype, batch: sb, addon: sb / median(ts), eager: e?.trainImgPerSec, note: `eager U-Net nn.Module, AdamW, clip 1; addon predict masks ${predict.toFixed(0)} img/s` });
    }
  },

  // JPEG -> segment -> overlay -> score (bench/serve.ts: MaskingPredictor in process and over HTTP vs
  // the Python loop on the eager models). The synthetic JPEG tree goes to the work folder.
  async serve() {
    if (!needModels()) return;
    const out = join(work, 'serve');
    rmSync(join(out, 'serve.json'), { force: true });
    const n = cuda ? 32 : 4;
    const args = [...tsx, join(root, 'bench/serve.ts'), '--model', clipDir, '--segmenter', segDir, '--device', dev, '--python', python, '--out', out, '--eager'];
    args.push(...(cuda ? ['--n', String(n), '--reps', '2', '--width', '2500', '--height', '3000', '--bf16'] : ['--n', String(n), '--reps', '1', '--width', '320', '--height', '384']));
    const r = await run(process.execPath, args);
    const res = r.ok ? readJson(join(out, 'serve.json')) : null;
    if (!check(res?.http?.c8?.imagesPerSecond > 0, `bench/serve.ts (${r.seconds.toFixed(0)} s): ${r.why}`)) return;
    check(res.python?.imagesPerSecond > 0, 'eager Python serving loop ran');
    const c1 = res.inProcess.c1;
    row({ work: 'serve (JPEG -> segment -> overlay -> score)', unit: 'img/s', dtype: cuda ? 'bf16' : 'fp32', batch: 1, addon: c1.imagesPerSecond, eager: res.python?.imagesPerSecond, note: `${res.size} JPEGs; in process c1 p50 ${c1.p50Ms.toFixed(0)} ms, c8 ${res.inProcess.c8.imagesPerSecond.toFixed(1)} img/s, HTTP c8 ${res.http.c8.imagesPerSecond.toFixed(1)} img/s; mean model batch ${res.batches ? (res.batches.calls / Math.max(1, res.batches.batches)).toFixed(1) : 'n/a'} in process; eager PIL + open_clip + U-Net${cuda ? ', both sides under bf16 autocast' : ''}, one at a time` });
  },
};

function mkdtempIn(name) {
  const d = join(tmpdir(), `cxrmask-gpu-${name}-${process.pid}`);
  mkdirSync(d, { recursive: true });
  return d;
}

const name = process.argv[2];
if (!sections[name]) {
  console.error(`unknown section '${name}' (${Object.keys(sections).join(', ')})`);
  process.exit(2);
}
mkdirSync(work, { recursive: true });
try {
  await sections[name]();
} catch (e) {
  check(false, `${name}: ${e.stack ?? e.message}`);
}
result.status = failures ? 'fail' : 'ok';
result.note = [...notes, ...(failures ? [`${failures} check(s) failed`] : [])].join('; ');
if (resultFile) writeFileSync(resultFile, JSON.stringify(result));
process.exit(failures ? 1 : 0);
