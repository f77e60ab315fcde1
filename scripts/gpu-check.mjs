// CUDA checks for a GPU machine without Node tooling (run by scripts/gpu-check.sh with a carried Node):
// diagnostics, CUDA parity against the Python reference of models/tiny, training/save/load on CUDA,
// CPU<->CUDA state round trip, then (when open_clip is importable) addon vs Python on CUDA at
// biomedclip size, the data-parallel all-reduce overhead per step (NCCL), then the data-path bench (bench/pipeline.ts --model under tsx: LP features and
// fine-tuning fed from cache records, GPU wait share, Python eager over the same JPEGs), then the
// serving bench (bench/serve.ts: segment + overlay + classify per JPEG, in-process and HTTP). The checks use
// the compiled TypeScript in dist/ (npx tsc); results go to $OUT/pipeline.json when OUT is set.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '..', '..');
const { ClipModel } = await import(join(root, 'dist/model/clip.js'));
const { Classifier } = await import(join(root, 'dist/model/classifier.js'));
const { loadTokenizer } = await import(join(root, 'dist/model/tokenizer.js'));
const native = await import(join(root, 'dist/native.js'));

const python = process.env.PYTHON ?? 'python3';
// CXRMASK_GPU_CHECK_DEVICE=cpu dry-runs the same checks on CPU (to test this script without a GPU).
const dev = process.env.CXRMASK_GPU_CHECK_DEVICE ?? 'cuda';
const tiny = process.env.CXRMASK_TEST_MODEL ?? join(root, 'models/tiny');
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
};
const f32 = (dir, blob) => {
  const b = readFileSync(join(dir, blob.file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

const d = native.diagnostics();
console.log(JSON.stringify({ torch: d.torch, cuda: d.cuda, blas: d.blas.blas, threads: d.threads }, null, 1));
if (dev === 'cuda') {
  check(d.cuda.available, `CUDA available (${d.cuda.devices.map((x) => x.name).join(', ')})`);
  if (!d.cuda.available) process.exit(1);
}

const s0 = 224;
// --- parity on CUDA --------------------------------------------------------------------------
const ref = JSON.parse(readFileSync(join(tiny, 'reference.json'), 'utf8'));
const clip = await ClipModel.load(tiny, { device: dev });
check(clip.device.startsWith(dev), `model on ${clip.device}`);
const n = ref.images.shape[0];
const img = await clip.encodeImage(f32(tiny, ref.images), n);
const dImg = maxDiff(img, f32(tiny, ref.imageEmbeddings));
check(dImg <= 5e-3, `CUDA image embeddings vs Python CPU reference: max|diff| ${dImg.toExponential(2)} (<= 5e-3, TF32 convs)`);
const ids = loadTokenizer(tiny).encode(ref.prompts);
const txt = await clip.encodeText(ids, ref.prompts.length);
const dTxt = maxDiff(txt, f32(tiny, ref.textEmbeddings));
check(dTxt <= 5e-3, `CUDA text embeddings: max|diff| ${dTxt.toExponential(2)}`);
const imgBf16 = await clip.encodeImage(f32(tiny, ref.images), n, { bf16: true });
check(imgBf16.every(Number.isFinite), `bf16 autocast forward on CUDA (max|diff| vs fp32 ${maxDiff(imgBf16, img).toExponential(2)})`);
clip.dispose();

// --- cache records painted + normalised on the GPU == the CPU path (== TypeScript planeToTensor) --------
{
  const { hostBytes, recordsToImages } = await import(join(root, 'dist/model/records.js'));
  const { paintTable } = await import(join(root, 'dist/masks/overlay.js'));
  const rn = 4;
  const plane = s0 * s0;
  const rec = hostBytes(rn * 2 * plane); // pinned on a GPU machine: the asynchronous copy path
  for (let i = 0; i < rec.length; i++) {
    const p = i % (2 * plane);
    rec[i] = p < plane ? (i * 2654435761) % 251 : (i * 40503) % 97 < 5 ? 1 + ((i >> 3) % 7) : 0;
  }
  const batch = (device) => recordsToImages(
    { kind: 'records', records: rec, size: s0, pixels: { mean: [0.48, 0.46, 0.41], std: [0.27, 0.26, 0.28], paint: paintTable({ alpha: 0.6 }), original: true, masked: true } },
    rn,
    { device },
  );
  const dRec = maxDiff(await batch(dev), await batch('cpu'));
  check(dRec <= 1e-6, `records painted + normalised on ${dev} vs CPU: max|diff| ${dRec.toExponential(2)} (<= 1e-6)`);
}

// --- training on CUDA, state round trip CUDA -> CPU -------------------------------------------
const s = 224;
const bs = 16;
const x = Float32Array.from({ length: bs * 3 * s * s }, (_, i) => ((Math.floor(i / (3 * s * s)) % 2) ? 0.6 : -0.6) + 0.2 * Math.sin(0.37 * i));
const y = Float32Array.from({ length: bs * 5 }, (_, i) => ((Math.floor(i / 5) % 2) + (i % 5)) % 2);
for (const bf16 of [false, true]) {
  const c = await Classifier.create({ modelDir: tiny, device: dev, lrEncoder: 1e-3, lrHead: 1e-2, gradClip: 1, bf16, seed: 1 });
  const losses = [];
  for (let i = 0; i < 6; i++) losses.push((await c.trainStep(x, bs, y)).loss);
  check(losses[5] < losses[0], `CUDA train ${bf16 ? 'bf16' : 'fp32'}: loss ${losses[0].toFixed(4)} -> ${losses[5].toFixed(4)} (bf16Active ${c.bf16Active})`);
  if (!bf16) {
    const path = join(mkdtempSync(join(tmpdir(), 'cxrmask-gpu-')), 'state.pt');
    await c.save(path);
    const onCpu = await Classifier.create({ modelDir: tiny, device: 'cpu', lrEncoder: 1e-3, lrHead: 1e-2, gradClip: 1, seed: 9 });
    await onCpu.load(path);
    const dp = maxDiff(await onCpu.predict(x, bs), await c.predict(x, bs));
    check(dp < 1e-3, `CUDA-saved state loads on CPU: prediction max|diff| ${dp.toExponential(2)}`);
    onCpu.dispose();
  }
  c.dispose();
}

// --- benchmark at biomedclip size on CUDA -----------------------------------------------------
const probe = spawnSync(python, ['-c', 'import open_clip, timm, transformers'], { stdio: 'ignore' });
const bigDir = process.env.CXRMASK_BENCH_MODEL ?? join(root, 'models/biomedclip');
if (dev !== 'cuda') {
  console.log('skip benchmark: dry run on', dev);
} else if (probe.status !== 0) {
  console.log('skip benchmark: open_clip/timm/transformers not importable by', python);
} else {
  const dir = bigDir;
  if (!existsSync(join(dir, 'clip.pt'))) {
    const ex = spawnSync(python, [join(root, 'tools/export_biomedclip.py'), '--random-init', 'biomedclip', '--out', dir, '--seed', '0'], { stdio: 'inherit' });
    if (ex.status !== 0) throw new Error('export failed');
  }
  const batch = Number(process.env.BENCH_BATCH ?? 64);
  const xb = Float32Array.from({ length: batch * 3 * s * s }, (_, i) => 0.5 * Math.sin(0.37 * i));
  const yb = Float32Array.from({ length: batch * 5 }, (_, i) => i % 2);
  const timed = async (fn, warm = 3, iters = 10) => {
    for (let i = 0; i < warm; i++) await fn();
    const t = performance.now();
    for (let i = 0; i < iters; i++) await fn();
    return (performance.now() - t) / 1000 / iters;
  };
  const m = await ClipModel.load(dir, { device: 'cuda' });
  const addon = {};
  for (const mode of ['fp32', 'bf16']) {
    const c = await Classifier.create({ modelDir: dir, device: 'cuda', bf16: mode === 'bf16' });
    addon[mode] = {
      forward_img_s: batch / (await timed(() => m.encodeImage(xb, batch, { bf16: mode === 'bf16' }))),
      train_img_s: batch / (await timed(() => c.trainStep(xb, batch, yb))),
    };
    c.dispose();
  }
  m.dispose();
  const py = spawnSync(python, [join(root, 'bench/native_torch.py'), '--model', join(dir, 'clip.pt'), '--batch', String(batch), '--device', 'cuda', '--warmup', '3', '--iters', '10', '--threads', String(d.threads.intraOp)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const pr = JSON.parse(py.stdout.trim().split('\n').pop()).results;
  for (const mode of ['fp32', 'bf16'])
    for (const k of ['forward_img_s', 'train_img_s'])
      console.log(`bench cuda ${mode} ${k}: addon ${addon[mode][k].toFixed(1)} python ${pr[mode][k].toFixed(1)} ratio ${(addon[mode][k] / pr[mode][k]).toFixed(2)}x`);
  console.log(`bench cuda forward addon bf16 / python fp32: ${(addon.bf16.forward_img_s / pr.fp32.forward_img_s).toFixed(2)}x`);
}
// --- data parallel: per-step all-reduce overhead at biomedclip size (NCCL on CUDA, gloo on CPU) ----
// NCCL refuses two ranks on one GPU, so this is a 1-rank group: each step takes the whole N-rank path
// (group loss-count all-reduce, gradients flattened into 25 MB buckets, NCCL all-reduce, averaged,
// copied back), and its time minus an ungrouped step's is the fixed per-step overhead. With N GPUs the
// ring all-reduce adds about 2(N-1)/N x gradient bytes / bus bandwidth (docs/distributed.md).
{
  const { ProcessGroup } = await import(join(root, 'dist/distributed/group.js'));
  const { freePort } = await import(join(root, 'dist/distributed/launch.js'));
  const backends = ProcessGroup.backends();
  check(backends.gloo, `addon has the gloo backend (nccl: ${backends.nccl})`);
  const cuda = dev === 'cuda';
  if (cuda && !backends.nccl) {
    console.log('skip NCCL overhead: addon built without NCCL (CMake found no nccl.h or no CUDA toolkit crt/ headers)');
  } else {
    const device = cuda ? 'cuda:0' : 'cpu';
    const model = cuda && existsSync(join(bigDir, 'clip.pt')) ? bigDir : tiny;
    const batch = cuda ? 32 : 2;
    const size = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8')).imageSize;
    const xb = new Float32Array(batch * 3 * size * size).map((_, i) => Math.sin(i) * 0.5);
    const yb = new Float32Array(batch * 5).map((_, i) => i % 2);
    const iters = cuda ? 20 : 3;
    const timed = async (fn) => {
      for (let i = 0; i < 3; i++) await fn();
      const t = performance.now();
      for (let i = 0; i < iters; i++) await fn();
      return (performance.now() - t) / iters;
    };
    try {
      const g = await ProcessGroup.create({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: await freePort(), device, timeoutMs: 120_000 });
      const c = await Classifier.create({ modelDir: model, device, bf16: cuda, seed: 0 });
      // alternating blocks (attachGroup(null) detaches), medians: drifts in clock or load cancel out
      const plainMs = [];
      const groupedMs = [];
      for (let k = 0; k < 3; k++) {
        await c.attachGroup(null);
        plainMs.push(await timed(() => c.trainStep(xb, batch, yb)));
        await c.attachGroup(g);
        groupedMs.push(await timed(() => c.trainStep(xb, batch, yb)));
      }
      const median = (a) => a.slice().sort((x, y) => x - y)[1];
      const plain = median(plainMs);
      const grouped = median(groupedMs);
      const extra = grouped - plain;
      check(Number.isFinite(extra), `data parallel (${g.backend}, 1 rank, ${model.split('/').pop()}, batch ${batch} on ${device}): step ${plain.toFixed(1)} ms -> ${grouped.toFixed(1)} ms, all-reduce overhead ${extra.toFixed(1)} ms/step (${((100 * extra) / plain).toFixed(1)} %)`);
      await c.dispose();
      await g.close();
    } catch (e) {
      check(false, `data-parallel overhead: ${e.message}`);
    }
  }
}
// --- attribution on the device == on the CPU (tiny), bf16 finite; biomedclip maps/s vs Python ------------
{
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
  a.dispose();
  b.dispose();
  if (dev === 'cuda' && existsSync(join(bigDir, 'clip.pt'))) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench/attribution.ts'), '--model', bigDir, '--device', 'cuda', '--n', '8', '--batch', '32', '--python', python], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 240_000, killSignal: 'SIGKILL' });
    console.log(r.status === 0 ? r.stdout.trim() : `attribution bench failed: exit ${r.status ?? r.signal}`);
  }
}
// --- data path: cache records -> addon on CUDA (biomedclip), GPU wait share, Python eager ---------
// One bounded child: synthetic full-size JPEGs + cache (made there), then timed loops; the dry run uses
// models/tiny with tiny sizes to prove the paths.
{
  const cuda = dev === 'cuda';
  const model = cuda && existsSync(join(bigDir, 'clip.pt')) ? bigDir : tiny;
  const out = process.env.OUT || join(root, '.cache/gpu/out');
  mkdirSync(out, { recursive: true });
  const json = join(out, 'pipeline.json');
  const sizes = cuda
    ? ['--model-images', process.env.PIPELINE_IMAGES ?? '256', '--model-seconds', process.env.PIPELINE_SECONDS ?? '20', '--eager-workers', String(Math.min(16, d.threads.intraOp || 8)), '--bf16']
    : ['--model-images', '16', '--model-width', '320', '--model-height', '384', '--feature-batch', '8', '--train-batch', '8', '--model-seconds', '2', '--eager-workers', '1'];
  const args = ['--import', 'tsx', join(root, 'bench/pipeline.ts'), '--only', 'model', '--model', model, '--device', dev, '--dir', join(root, '.cache/gpu/pipeline'), '--json', json, '--python', python, ...sizes, ...(probe.status === 0 ? [] : ['--skip-eager'])];
  if (!existsSync(join(root, 'node_modules/tsx/package.json'))) {
    console.log('skip pipeline bench: tsx not carried (node-deps.tgz from --prepare)');
  } else {
    const limit = Number(process.env.PIPELINE_TIMEOUT_S ?? (cuda ? 300 : 180));
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], timeout: limit * 1000, killSignal: 'SIGKILL' });
    const secs = ((performance.now() - t0) / 1000).toFixed(0);
    const res = r.status === 0 && existsSync(json) ? JSON.parse(readFileSync(json, 'utf8')) : null;
    const m = res?.model;
    check(m?.features?.imgPerSec > 0 && m?.train?.imgPerSec > 0, `pipeline bench (${m?.model ?? 'model'} on ${dev}, ${secs} s of ${limit}): ${r.error ? r.error.message : `exit ${r.status ?? r.signal}`}, ${json}`);
    if (m) {
      console.log(`pipeline ${m.device}: LP features ${m.features.rowsPerSec.toFixed(0)} rows/s (${m.features.imgPerSec.toFixed(0)} records/s, both variants), GPU waits ${(100 * m.features.waitFraction).toFixed(1)} %`);
      console.log(`pipeline ${m.device}: JFT train ${m.train.imgPerSec.toFixed(0)} img/s, GPU waits ${(100 * m.train.waitFraction).toFixed(1)} %`);
      if (m.eager?.features) console.log(`pipeline python eager: features ${m.eager.features.imgPerSec.toFixed(0)} img/s (wait ${(100 * m.eager.features.waitFraction).toFixed(1)} %), train ${m.eager.train.imgPerSec.toFixed(0)} img/s (wait ${(100 * m.eager.train.waitFraction).toFixed(1)} %); ratio ours/python features ${m.ratio?.features?.toFixed(2)}x train ${m.ratio?.train?.toFixed(2)}x`);
      else if (m.eager) console.log(`pipeline python eager: ${JSON.stringify(m.eager)}`);
    }
  }
}

// --- segmenter: parity of the tiny export on the device, then train/predict throughput of `unet` ---------
{
  const { Segmenter } = await import(join(root, 'dist/model/segmenter.js'));
  const segTiny = process.env.CXRMASK_TEST_SEGMENTER ?? join(root, 'models/seg-tiny');
  if (!existsSync(join(segTiny, 'seg.pt'))) {
    console.log('skip segmenter: models/seg-tiny not carried (scripts/setup.sh exports it)');
  } else {
    const sref = JSON.parse(readFileSync(join(segTiny, 'reference.json'), 'utf8'));
    const seg = await Segmenter.load(segTiny, { device: dev });
    const sn = sref.images.shape[0];
    const dSeg = maxDiff(await seg.logits(f32(segTiny, sref.images), sn), f32(segTiny, sref.logits));
    check(dSeg <= 1e-3, `segmenter logits on ${dev} vs Python CPU reference: max |diff| ${dSeg.toExponential(2)}`);
    await seg.dispose();
    // Throughput at the real preset (exported here: random init, ~7.8M params) on CUDA; tiny in the dry run.
    let segDir = segTiny;
    if (dev === 'cuda') {
      segDir = join(root, '.cache/gpu/seg-unet');
      if (!existsSync(join(segDir, 'seg.pt'))) {
        const ex = spawnSync(python, [join(root, 'tools/segmenter_export.py'), '--random-init', 'unet', '--out', segDir], { stdio: 'inherit' });
        if (ex.status !== 0) throw new Error('segmenter export failed');
      }
    }
    const sb = dev === 'cuda' ? Number(process.env.SEG_BENCH_BATCH ?? 64) : 4;
    const xs = Float32Array.from({ length: sb * 3 * s * s }, (_, i) => 0.5 * Math.sin(0.37 * i));
    const bits = Uint8Array.from({ length: sb * s * s }, (_, i) => ((i % (s * s)) % s < s / 2 ? 1 : 2));
    const timedSeg = async (fn, warm = 2, iters = dev === 'cuda' ? 10 : 2) => {
      for (let i = 0; i < warm; i++) await fn();
      const t = performance.now();
      for (let i = 0; i < iters; i++) await fn();
      return (performance.now() - t) / 1000 / iters;
    };
    for (const bf16 of [false, true]) {
      const m = await Segmenter.load(segDir, { device: dev, bf16 });
      const train = sb / (await timedSeg(() => m.trainStep(xs, sb, bits)));
      const pred = sb / (await timedSeg(() => m.predictMasks(xs, sb)));
      console.log(`segmenter ${m.meta.preset} on ${dev} ${bf16 && m.bf16Active ? 'bf16' : 'fp32'} batch ${sb}: train ${train.toFixed(1)} img/s, predict masks ${pred.toFixed(1)} img/s`);
      await m.dispose();
    }
  }
}

// --- serving: JPEG -> segment + overlay + classify (bench/serve.ts: in-process and over HTTP, c=1 and 8,
// vs PIL + torch.jit on the same files). Real size on CUDA (biomedclip + the `unet` segmenter exported
// by the segmenter check above); the dry run uses models/tiny + unet-tiny on small images.
{
  const cuda = dev === 'cuda';
  const segDir = cuda ? join(root, '.cache/gpu/seg-unet') : join(root, 'models/seg-tiny');
  const model = cuda && existsSync(join(bigDir, 'clip.pt')) ? bigDir : tiny;
  const out = process.env.OUT || join(root, '.cache/gpu/out');
  const sizes = cuda
    ? ['--n', process.env.SERVE_IMAGES ?? '32', '--reps', '2', '--width', '2500', '--height', '3000']
    : ['--n', '4', '--reps', '1', '--width', '320', '--height', '384'];
  if (!existsSync(join(root, 'node_modules/tsx/package.json')) || !existsSync(join(segDir, 'model.json'))) {
    console.log('skip serve bench: tsx not carried or no segmenter export');
  } else {
    const limit = Number(process.env.SERVE_TIMEOUT_S ?? (cuda ? 240 : 180));
    const args = ['--import', 'tsx', join(root, 'bench/serve.ts'), '--model', model, '--segmenter', segDir, '--device', dev, '--python', python, '--out', out, ...sizes];
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], timeout: limit * 1000, killSignal: 'SIGKILL' });
    const json = join(out, 'serve.json');
    const res = r.status === 0 && existsSync(json) ? JSON.parse(readFileSync(json, 'utf8')) : null;
    check(res?.http?.c8?.imagesPerSecond > 0, `serve bench (${model} + ${segDir} on ${dev}): ${r.error ? r.error.message : `exit ${r.status ?? r.signal}`}, ${json}`);
  }
}

console.log(failures ? `${failures} check(s) FAILED` : 'all GPU checks passed');
process.exit(failures ? 1 : 0);
