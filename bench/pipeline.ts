/**
 * Data-path throughput, cache to model: how many images per second one host core
 * feeds the addon on the uint8 record path (against today's float32 path), the record → image
 * conversion alone, the share of an epoch the `tiny` model waits for data, the CheXmask join against
 * pandas when every row is wanted (bench/join.ts: real-shaped Preprocessed rows, same file, as a ratio;
 * --join-quick for a 0.1 GB file), and the cache build by worker count. With --model (e.g. a biomedclip export
 * on CUDA) it also times LP feature extraction and fine-tuning on records, and the same work in
 * Python eager (bench/pipeline_torch.py: open_clip, PIL DataLoader over the same JPEGs).
 * Writes bench/out/pipeline.json (or --json).
 *
 *   node --import tsx bench/pipeline.ts [--only host,epoch,join,build,model] [--skip-join] [--join-gb 1 | --join-quick]
 *   node --import tsx bench/pipeline.ts --only model --model models/biomedclip --device cuda --bf16
 */

import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DataWait, prefetch } from '../ts/common/prefetch.js';
import { shuffled } from '../ts/common/random.js';
import { buildIndex } from '../ts/data/datasets/mimic.js';
import type { Batch } from '../ts/experiment/backend.js';
import { trainWithCheckpoints } from '../ts/experiment/train.js';
import { type Cache, openCache } from '../ts/images/cache.js';
import { buildCache } from '../ts/images/cache-build.js';
import { preprocessFor } from '../ts/model/backend-real.js';
import { Classifier } from '../ts/model/classifier.js';
import { ClipModel } from '../ts/model/clip.js';
import { modelFile, readModelMeta } from '../ts/model/meta.js';
import { hostBytes, recordsToImages } from '../ts/model/records.js';
import { type DeviceSpec, diagnostics, loadNative, type NativeClipModel, setThreads } from '../ts/native.js';
import { benchDir, pythonExe, root } from './common.js';

const { values: opt } = parseArgs({
  options: {
    only: { type: 'string', default: 'host,epoch,join,build' },
    dir: { type: 'string', default: join(benchDir, 'out') },
    json: { type: 'string' },
    python: { type: 'string' },
    // host: one core, null model
    'host-images': { type: 'string', default: '8192' },
    'host-batch': { type: 'string', default: '64,256' },
    // epoch: tiny model, JFT, one epoch
    tiny: { type: 'string', default: join(root, 'models', 'tiny') },
    'epoch-train': { type: 'string', default: '512' },
    'epoch-val': { type: 'string', default: '128' },
    'epoch-threads': { type: 'string', default: '2' },
    // join
    'join-gb': { type: 'string', default: '1' },
    'join-quick': { type: 'boolean', default: false },
    'skip-join': { type: 'boolean', default: false },
    // cache build: full-size-ish JPEGs
    'build-images': { type: 'string', default: '40' },
    'build-width': { type: 'string', default: '2000' },
    'build-height': { type: 'string', default: '2500' },
    'build-workers': { type: 'string', default: '1,2' },
    // model: a real model on --device (the GPU check)
    model: { type: 'string' },
    device: { type: 'string', default: 'cpu' },
    bf16: { type: 'boolean', default: false },
    'model-images': { type: 'string', default: '256' },
    'model-width': { type: 'string', default: '2000' },
    'model-height': { type: 'string', default: '2500' },
    'feature-batch': { type: 'string', default: '256' },
    'train-batch': { type: 'string', default: '64' },
    'model-seconds': { type: 'string', default: '30' },
    'eager-workers': { type: 'string', default: String(availableParallelism()) },
    'skip-eager': { type: 'boolean', default: false },
  },
});

const num = (k: keyof typeof opt): number => {
  const v = Number(opt[k]);
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`--${k} must be a positive number, got ${opt[k]}`);
  return v;
};
const only = new Set(String(opt.only).split(','));
if (opt['skip-join']) only.delete('join');
const out = resolve(String(opt.dir));
mkdirSync(out, { recursive: true });
const log = (s: string) => process.stderr.write(`[bench pipeline] ${s}\n`);
const load = () => loadavg().map((v) => Number(v.toFixed(2)));

/** Synthetic MIMIC/CheXmask tree under dir, reused while its parameters are unchanged. */
async function synthData(dir: string, p: { n: number; width: number; height: number }) {
  const stamp = join(dir, 'synth-params.json');
  // `grey`: trees rendered before the synthetic JPEGs had one grey component are made again
  const want = JSON.stringify({ ...p, seed: 11, lateralRate: 0, grey: true });
  const mimicRoot = join(dir, 'mimic');
  const chexmaskCsv = join(dir, 'chexmask', 'MIMIC-CXR-JPG.csv');
  if (!(existsSync(stamp) && readFileSync(stamp, 'utf8') === want && existsSync(chexmaskCsv))) {
    const { synthesize } = await import('../ts/synth/synthesize.js');
    const t0 = performance.now();
    // big images render in worker threads when the machine has cores to spare
    const workers = Math.max(0, Math.min(availableParallelism(), 16) - 1);
    await synthesize({
      out: dir,
      n: p.n,
      seed: 11,
      width: p.width,
      height: p.height,
      lateralRate: 0,
      workers,
      force: true, // the bench's own scratch folder, made before synth marked its trees
    });
    writeFileSync(stamp, want);
    log(
      `synthesized ${p.n} images ${p.width}×${p.height} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  return { mimicRoot, chexmaskCsv };
}

/** The synthetic tree's image cache for a model folder (built once, reused while intact). */
async function dataCache(
  name: string,
  p: { n: number; width: number; height: number },
  modelDir: string,
  concurrency?: number,
): Promise<{ cache: Cache; mimicRoot: string }> {
  const dir = join(out, name);
  const { mimicRoot, chexmaskCsv } = await synthData(dir, p);
  const preprocess = preprocessFor(readModelMeta(modelDir));
  const cacheDir = join(dir, 'cache');
  // As the real backend does: records go straight into addon-owned memory the model borrows.
  const open = () => {
    const cache = openCache(cacheDir, { preprocess });
    cache.allocate = hostBytes;
    return cache;
  };
  try {
    return { cache: open(), mimicRoot };
  } catch {
    const { entries } = await buildIndex({ root: mimicRoot });
    await buildCache({
      entries,
      root: mimicRoot,
      chexmask: chexmaskCsv,
      out: cacheDir,
      preprocess,
      concurrency,
    });
    return { cache: open(), mimicRoot };
  }
}

/** bench/out/null-model via bench/null_model.py (once). */
function nullModel(): string {
  const dir = join(out, 'null-model');
  if (!existsSync(join(dir, 'clip.pt'))) {
    const r = spawnSync(pythonExe(opt.python), [join(benchDir, 'null_model.py'), '--out', dir], {
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error('bench/null_model.py failed');
  }
  return dir;
}

/** Batches of `size` indices drawn from `pool` in seeded shuffled passes until `total` are taken. */
function batchesOf(pool: number[], total: number, size: number): number[][] {
  const order: number[] = [];
  for (let pass = 0; order.length < total; pass++) order.push(...shuffled(pool, 1000 + pass));
  const out: number[][] = [];
  for (let s = 0; s < total; s += size) out.push(order.slice(s, Math.min(total, s + size)));
  return out;
}

/**
 * Batch k of batchesOf(pool, ∞, size), made when asked: the timed model loops run until a deadline,
 * and listing 100,000 batches of 256 up front cost 2 s and 0.7 GB before the clock started.
 */
function batchAt(pool: number[], size: number): (k: number) => number[] {
  const passes = new Map<number, number[]>();
  const order = (i: number) => {
    const pass = Math.floor(i / pool.length);
    let o = passes.get(pass);
    if (!o) {
      o = shuffled(pool, 1000 + pass);
      passes.set(pass, o);
      passes.delete(pass - 2); // batches are asked for in order: a batch spans two passes at most
    }
    return o[i % pool.length]!;
  };
  return (k) => Array.from({ length: size }, (_, j) => order(k * size + j));
}

async function timeLoop(batches: number[][], step: (idx: number[]) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (const idx of batches) await step(idx);
  return (performance.now() - t0) / 1000;
}

// --- host: record path vs float32 path, one core, a model that does no work ---------------------
async function hostAt(cache: Cache, clip: NativeClipModel, all: number[], total: number, bs: number) {
  const batches = batchesOf(all, total, bs);
  const per = 2 * cache.size ** 2;
  const read = await timeLoop(batches, (idx) => cache.recordBatch(idx, ['original']));
  // One loop through the real addon: the host's share is the read plus the synchronous part of the
  // native call (checks + the copy of the records it makes at call time); the paint/normalise and the
  // model then run on a worker (on CUDA, on the device) and are awaited but not counted as host time.
  const shape = [0, 2, cache.size, cache.size];
  let loopRead = 0;
  let handOver = 0;
  const e2e = await timeLoop(batches, async (idx) => {
    const t0 = performance.now();
    const b = await cache.recordBatch(idx, ['original']);
    const t1 = performance.now();
    shape[0] = b.n;
    const p = clip.encodeImage(b.x.records, shape, false, b.x.pixels);
    loopRead += t1 - t0;
    handOver += performance.now() - t1;
    await p;
  });
  const host = (loopRead + handOver) / 1000;
  // the conversion alone on one pre-read batch (includes its copy back to JS)
  const pre = await cache.recordBatch(batches[0]!, ['original']);
  const convert = await timeLoop(batches, (idx) =>
    recordsToImages({ ...pre.x, records: pre.x.records.subarray(0, idx.length * per) }, idx.length),
  );
  const scratch = new Float32Array(bs * 3 * cache.size ** 2);
  const tensor = await timeLoop(batches, async (idx) => {
    const b = cache.batch(idx, 'original', { out: scratch });
    await clip.encodeImage(
      b.x.subarray(0, b.n * 3 * cache.size ** 2),
      [b.n, 3, cache.size, cache.size],
      false,
    );
  });
  return {
    batch: bs,
    hostImgPerSec: total / host,
    /** Per-image µs of the host loop: the read, and the synchronous part of the addon call. */
    hostMicros: { read: (loopRead * 1000) / total, handOver: (handOver * 1000) / total },
    readImgPerSec: total / read,
    e2eCpuImgPerSec: total / e2e,
    cpuConvertImgPerSec: total / convert,
    tensorImgPerSec: total / tensor,
  };
}

async function benchHost() {
  setThreads(1);
  const { cache } = await dataCache('small', { n: 1200, width: 320, height: 384 }, opt.tiny!);
  // the addon's model object itself, so the synchronous part of a call can be timed on its own
  const nm = nullModel();
  const clip = await loadNative().ClipModel.load(modelFile(nm, readModelMeta(nm)), 'cpu');
  const all = cache.entries.map((_, i) => i);
  const total = num('host-images');
  await timeLoop(batchesOf(all, all.length, 256), (idx) => cache.recordBatch(idx, ['original'])); // page cache
  // the floor: positional reads of the same records into one reused buffer, synchronously
  const rb = 2 * cache.size ** 2;
  const buf = Buffer.allocUnsafe(rb);
  const fds = new Map<string, number>();
  const order = batchesOf(all, total, total)[0]!;
  const tr = performance.now();
  for (const i of order) {
    const e = cache.entries[i]!;
    const f = `shard-${String(e.shard).padStart(5, '0')}.bin`;
    if (!fds.has(f)) fds.set(f, openSync(join(cache.dir, f), 'r'));
    readSync(fds.get(f)!, buf, 0, rb, e.slot * rb);
  }
  const rawReadImgPerSec = total / ((performance.now() - tr) / 1000);
  for (const fd of fds.values()) closeSync(fd);
  const byBatch = [];
  for (const bs of String(opt['host-batch']).split(',').map(Number))
    byBatch.push(await hostAt(cache, clip, all, total, bs));
  clip.dispose();
  cache.close();
  const first = byBatch[0]!;
  return {
    images: total,
    threads: 1,
    ...first,
    rawReadImgPerSec,
    byBatch,
    hostTarget: 10_000,
    hostTargetMet: first.hostImgPerSec >= 10_000,
    note: 'hostImgPerSec: Cache.recordBatch (records read into addon-owned host buffers) + the synchronous part of the addon call (checks; the records are borrowed, not copied), timed in the same loop as e2eCpuImgPerSec — the host share when the model is on CUDA. e2eCpuImgPerSec adds the paint/normalise on this CPU (cpuConvertImgPerSec alone, device work on CUDA). rawReadImgPerSec: synchronous preads into one reused buffer (the I/O floor). tensorImgPerSec: float32 path (planeToTensor in TS + 12·S² bytes handed over).',
  };
}

// --- epoch: share of a JFT epoch the tiny model waits for data ----------------------------------
async function benchEpoch() {
  setThreads(num('epoch-threads'));
  const { cache } = await dataCache('small', { n: 1200, width: 320, height: 384 }, opt.tiny!);
  const trainIdx = cache.indicesOf('train').slice(0, num('epoch-train'));
  const valIdx = cache.indicesOf('validate').slice(0, num('epoch-val'));
  const sources: Record<string, (idx: number[]) => Promise<Batch>> = {
    records: (idx) => cache.recordBatch(idx, ['original']),
    float32: async (idx) => cache.batch(idx, 'original'),
  };
  const res: Record<string, unknown> = {};
  // a throwaway short epoch first: the first training in a process pays one-off costs (kernel and
  // allocator warm-up) that would otherwise land on whichever source runs first
  for (const [name, source] of [['warm-up', sources['records']!] as const, ...Object.entries(sources)]) {
    const dir = join(out, `epoch-${name}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const clf = await Classifier.create({
      modelDir: opt.tiny!,
      device: 'cpu',
      lrEncoder: 1e-4,
      lrHead: 1e-3,
      seed: 0,
    });
    const st = await trainWithCheckpoints(clf, {
      dir,
      epochs: 1,
      batchSize: 64,
      seed: 0,
      trainIdx: name === 'warm-up' ? trainIdx.slice(0, 128) : trainIdx,
      valIdx: name === 'warm-up' ? valIdx.slice(0, 64) : valIdx,
      source,
      selection: 'macroAUROC',
    });
    clf.dispose();
    const e = st.history[0]!;
    if (name === 'warm-up') continue;
    res[name] = {
      waitFraction: (e.dataWaitSeconds ?? 0) / e.seconds,
      dataWaitSeconds: e.dataWaitSeconds,
      seconds: e.seconds,
      trainSeconds: e.trainSeconds,
      trainImgPerSec: trainIdx.length / (e.trainSeconds ?? e.seconds),
    };
  }
  cache.close();
  const rec = res['records'] as { waitFraction: number };
  return {
    trainImages: trainIdx.length,
    valImages: valIdx.length,
    batch: 64,
    threads: num('epoch-threads'),
    waitFraction: rec.waitFraction,
    waitTarget: 0.05,
    waitTargetMet: rec.waitFraction < 0.05,
    ...res,
  };
}

// --- cache build by worker count -----------------------------------------------------------------
async function benchBuild() {
  const p = { n: num('build-images'), width: num('build-width'), height: num('build-height') };
  const dir = join(out, 'big');
  const { mimicRoot, chexmaskCsv } = await synthData(dir, p);
  const { entries } = await buildIndex({ root: mimicRoot });
  const preprocess = preprocessFor(readModelMeta(opt.tiny!));
  const byWorkers: Record<string, number> = {};
  for (const w of String(opt['build-workers']).split(',').map(Number)) {
    const to = join(dir, `cache-w${w}`);
    rmSync(to, { recursive: true, force: true });
    const s = await buildCache({
      entries,
      root: mimicRoot,
      chexmask: chexmaskCsv,
      out: to,
      preprocess,
      concurrency: w,
    });
    byWorkers[String(w)] = s.imagesPerSecond;
    rmSync(to, { recursive: true, force: true });
  }
  return { images: entries.length, width: p.width, height: p.height, cacheBuildImgPerSec: byWorkers };
}

// --- model: LP features (both variants) and JFT on records, on --device, and Python eager --------
async function benchModel() {
  const modelDir = resolve(opt.model!);
  const device = String(opt.device) as DeviceSpec;
  const bf16 = opt.bf16 === true;
  const seconds = num('model-seconds');
  const p = { n: num('model-images'), width: num('model-width'), height: num('model-height') };
  const { cache, mimicRoot } = await dataCache(`model-${p.width}x${p.height}-${p.n}`, p, modelDir);
  const all = cache.entries.map((_, i) => i);
  // budgeted loop: warm-up steps, then timed steps until `seconds`, prefetching like the real loops
  const timed = async (
    bs: number,
    rowsPer: number,
    step: (b: Batch) => Promise<unknown>,
    read: (idx: number[]) => Promise<Batch>,
  ) => {
    const batch = batchAt(all, bs);
    const warm = 3;
    const wait = new DataWait();
    let images = 0;
    let t0 = 0;
    let i = 0;
    for await (const item of prefetch(100_000, (k) => read(batch(k)), { wait })) {
      if (!item.ok) throw item.error;
      if (i === warm) {
        t0 = performance.now();
        wait.seconds = 0;
      }
      await step(item.value);
      if (i >= warm) images += item.value.n;
      i++;
      if (i > warm && (performance.now() - t0) / 1000 > seconds) break;
    }
    const s = (performance.now() - t0) / 1000;
    return {
      imgPerSec: images / s,
      rowsPerSec: (images * rowsPer) / s,
      waitFraction: wait.seconds / s,
      steps: i - warm,
      seconds: s,
    };
  };
  const clip = await ClipModel.load(modelDir, { device });
  const fb = num('feature-batch');
  const features = await timed(
    fb,
    2,
    (b) => clip.encodeImage(b.x, b.n, { bf16 }),
    (idx) => cache.recordBatch(idx, ['original', 'masked']),
  );
  clip.dispose();
  const clf = await Classifier.create({ modelDir, device, bf16, lrEncoder: 1e-5, lrHead: 1e-3, gradClip: 1 });
  const tb = num('train-batch');
  const train = await timed(
    tb,
    1,
    (b) => clf.trainStep(b.x, b.n, b.labels, b.labelMask),
    (idx) => cache.recordBatch(idx, ['original']),
  );
  clf.dispose();
  let eager: unknown = null;
  if (!opt['skip-eager']) {
    const list = join(out, 'pipeline-jpegs.txt');
    writeFileSync(list, `${cache.entries.map((e) => join(mimicRoot, e.path)).join('\n')}\n`);
    const args = [
      join(benchDir, 'pipeline_torch.py'),
      '--model',
      modelDir,
      '--list',
      list,
      '--device',
      device,
    ];
    args.push('--feature-batch', String(fb), '--train-batch', String(tb), '--seconds', String(seconds));
    args.push('--workers', String(opt['eager-workers']), ...(bf16 ? ['--bf16'] : []));
    const r = spawnSync(pythonExe(opt.python), args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: (6 * seconds + 120) * 1000,
    });
    if (r.status === 0) eager = JSON.parse(r.stdout.trim().split('\n').pop()!);
    else eager = { error: `pipeline_torch.py exited ${r.status ?? r.signal}` };
  }
  cache.close();
  const e = eager as { features?: { imgPerSec: number }; train?: { imgPerSec: number } } | null;
  return {
    model: readModelMeta(modelDir).preset,
    device,
    bf16,
    images: cache.entries.length,
    jpeg: `${p.width}×${p.height}`,
    features: { batch: fb, ...features },
    train: { batch: tb, ...train },
    eager,
    ratio:
      e?.features && e.train
        ? // model rows per second on both sides (ours: two rows per record read, Python: one per JPEG decoded)
          { features: features.rowsPerSec / e.features.imgPerSec, train: train.imgPerSec / e.train.imgPerSec }
        : null,
  };
}

const t0 = performance.now();
const result: Record<string, unknown> = { loadavgBefore: load(), cpus: availableParallelism() };
try {
  const d = diagnostics();
  result['torch'] = d.torch.version;
  result['cuda'] = d.cuda.devices.map((x) => x.name);
} catch {}
const parts: [string, () => Promise<unknown>][] = [
  ['host', benchHost],
  ['epoch', benchEpoch],
  ['build', benchBuild],
  [
    'join',
    async () => {
      const { benchJoin } = await import('./join.js');
      // every id wanted, on rows shaped like CheXmask's MIMIC-CXR-JPG file
      return benchJoin({ sizeGB: opt['join-quick'] ? 0.1 : num('join-gb'), dir: out, shape: 'preprocessed' });
    },
  ],
  ['model', benchModel],
];
for (const [name, fn] of parts) {
  if (!only.has(name)) continue;
  log(`${name} (load ${load().join(' ')})`);
  const s = performance.now();
  result[name] = await fn();
  log(`${name} done in ${((performance.now() - s) / 1000).toFixed(1)} s`);
}
result['loadavgAfter'] = load();
result['seconds'] = (performance.now() - t0) / 1000;
// headline numbers at the top level, as the issue names them
const h = result['host'] as Record<string, number> | undefined;
const ep = result['epoch'] as { waitFraction: number; float32: { waitFraction: number } } | undefined;
const jn = result['join'] as { joinMBps: number; pandasJoinMBps: number; ratio: number } | undefined;
const bd = result['build'] as { cacheBuildImgPerSec: Record<string, number> } | undefined;
const headline = {
  ...(h
    ? {
        hostImgPerSec: h['hostImgPerSec'],
        cpuConvertImgPerSec: h['cpuConvertImgPerSec'],
        tensorImgPerSec: h['tensorImgPerSec'],
        hostTargetMet: h['hostTargetMet'],
      }
    : {}),
  ...(ep ? { waitFraction: ep.waitFraction, waitFractionFloat32: ep.float32.waitFraction } : {}),
  ...(jn ? { joinMBps: jn.joinMBps, pandasJoinMBps: jn.pandasJoinMBps, joinRatio: jn.ratio } : {}),
  ...(bd ? { cacheBuildImgPerSec: bd.cacheBuildImgPerSec } : {}),
};
const file = resolve(opt.json ?? join(out, 'pipeline.json'));
writeFileSync(file, `${JSON.stringify({ ...headline, ...result }, null, 1)}\n`);

const f = (v: unknown, d = 0) => (typeof v === 'number' ? v.toFixed(d) : String(v));
const rows: [string, string][] = [];
if (h) {
  rows.push([
    `host img/s (records, 1 core, batch ${h['batch']})`,
    `${f(h['hostImgPerSec'])} (target 10000: ${h['hostTargetMet'] ? 'met' : 'NOT met'})`,
  ]);
  rows.push([
    '  read only / raw pread floor img/s',
    `${f(h['readImgPerSec'])} / ${f(h['rawReadImgPerSec'])}`,
  ]);
  rows.push(['  CPU end to end img/s (conversion on this CPU)', f(h['e2eCpuImgPerSec'])]);
  rows.push(['cpu convert img/s (device work on CUDA)', f(h['cpuConvertImgPerSec'])]);
  rows.push(['float32 path img/s (planeToTensor, 1 core)', f(h['tensorImgPerSec'])]);
}
if (ep)
  rows.push([
    'tiny JFT wait fraction records / float32',
    `${f(ep.waitFraction, 3)} / ${f(ep.float32.waitFraction, 3)} (target < 0.05)`,
  ]);
if (jn)
  rows.push([
    'join MB/s every row wanted, ours / pandas (ratio)',
    `${f(jn.joinMBps)} / ${f(jn.pandasJoinMBps)} (${f(jn.ratio, 2)}x, target >= 1)`,
  ]);
if (bd)
  rows.push([
    'cache build img/s by workers',
    Object.entries(bd.cacheBuildImgPerSec)
      .map(([w, v]) => `${w}: ${f(v, 1)}`)
      .join(', '),
  ]);
const m = result['model'] as Awaited<ReturnType<typeof benchModel>> | undefined;
if (m) {
  const eg = m.eager as {
    features?: { imgPerSec: number; waitFraction: number };
    train?: { imgPerSec: number; waitFraction: number };
  } | null;
  rows.push([
    `${m.model} ${m.device} features img/s (both variants) / wait`,
    `${f(m.features.imgPerSec)} / ${f(m.features.waitFraction, 3)}`,
  ]);
  rows.push([
    `${m.model} ${m.device} JFT train img/s / wait`,
    `${f(m.train.imgPerSec)} / ${f(m.train.waitFraction, 3)}`,
  ]);
  if (eg?.features && eg.train) {
    rows.push([
      'python eager features img/s / wait',
      `${f(eg.features.imgPerSec)} / ${f(eg.features.waitFraction, 3)}`,
    ]);
    rows.push([
      'python eager JFT train img/s / wait',
      `${f(eg.train.imgPerSec)} / ${f(eg.train.waitFraction, 3)}`,
    ]);
  }
  if (m.ratio)
    rows.push([
      'ratio ours / python (features, train)',
      `${f(m.ratio.features, 2)}x, ${f(m.ratio.train, 2)}x`,
    ]);
}
const w = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
process.stdout.write(
  `load ${f(load()[0], 2)} (before ${(result['loadavgBefore'] as number[]).join(' ')}); wrote ${file}\n`,
);
