/**
 * The uint8 record path: the addon paints (Eq. 1) and normalises cache records itself. Reference: the
 * TypeScript planeToTensor path. Also: inputs are copied at call time (transfer + GC during an op is
 * safe), a NaN label mask is refused before the step, a weights-only checkpoint restores predictions.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pythonExe as python } from '../../bench/common.js';
import { mulberry32 } from '../../ts/common/random.js';

import { planeToTensor, resolvePreprocess } from '../../ts/images/preprocess.js';
import { paintTable } from '../../ts/masks/overlay.js';
import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { hostBytes, type RecordBatch, recordsToImages } from '../../ts/model/records.js';
import { MODEL_DIR, maxAbsDiff, requireModel } from './helpers.js';

/**
 * n records of size S: smooth gray ramps with noise, a few per cent contour pixels of every bit mix,
 * and region-fill bits (3-5) on a third of the pixels, which must never be painted.
 */
function records(n: number, S: number, seed = 1): Uint8Array {
  const r = mulberry32(seed);
  const out = new Uint8Array(n * 2 * S * S);
  for (let i = 0; i < n; i++) {
    const base = i * 2 * S * S;
    for (let p = 0; p < S * S; p++) {
      out[base + p] = Math.min(255, Math.floor(((p % S) / S) * 200 + r() * 56));
      if (r() < 0.06) out[base + S * S + p] = 1 + Math.floor(r() * 7);
      if (r() < 0.3) out[base + S * S + p] |= (1 + Math.floor(r() * 7)) << 3;
    }
  }
  return out;
}

const pp = resolvePreprocess({});

function batchOf(rec: Uint8Array, S: number, original: boolean, masked: boolean, alpha = 1): RecordBatch {
  return {
    kind: 'records',
    records: rec,
    size: S,
    pixels: { mean: [...pp.mean], std: [...pp.std], paint: paintTable({ alpha }), original, masked },
  };
}

/** The TypeScript reference: [n,3,S,S] per variant. */
function reference(rec: Uint8Array, n: number, S: number, masked: boolean, alpha = 1): Float32Array {
  const plane = S * S;
  const out = new Float32Array(n * 3 * plane);
  const table = paintTable({ alpha });
  const p = { ...pp, size: S };
  for (let i = 0; i < n; i++) {
    const gray = rec.subarray(i * 2 * plane, i * 2 * plane + plane);
    const contour = rec.subarray(i * 2 * plane + plane, (i + 1) * 2 * plane);
    planeToTensor(gray, masked ? contour : null, p, masked ? table : null, out, i * 3 * plane);
  }
  return out;
}

test('recordsToImages equals planeToTensor (original, masked, both; α 0.6)', async () => {
  const n = 3;
  const S = 40;
  const rec = records(n, S);
  const orig = reference(rec, n, S, false);
  const masked = reference(rec, n, S, true);
  assert.ok(maxAbsDiff(orig, masked) > 0.1, 'the fixture paints nothing');
  assert.ok(maxAbsDiff(await recordsToImages(batchOf(rec, S, true, false), n), orig) <= 1e-6);
  assert.ok(maxAbsDiff(await recordsToImages(batchOf(rec, S, false, true), n), masked) <= 1e-6);
  const both = await recordsToImages(batchOf(rec, S, true, true), n);
  assert.is(both.length, 2 * orig.length);
  assert.ok(maxAbsDiff(both.subarray(0, orig.length), orig) <= 1e-6);
  assert.ok(maxAbsDiff(both.subarray(orig.length), masked) <= 1e-6);
  const a6 = await recordsToImages(batchOf(rec, S, false, true, 0.6), n);
  assert.ok(maxAbsDiff(a6, reference(rec, n, S, true, 0.6)) <= 1e-6);
});

test('records that are not cache records are refused with a clear error', async () => {
  const S = 8;
  const rec = records(1, S);
  rec[S * S + 3] = 64; // contour bits 0-2 and fill bits 3-5 go up to 63
  try {
    await recordsToImages(batchOf(rec, S, false, true), 1);
    assert.unreachable('accepted a mask byte of 64');
  } catch (e) {
    assert.match((e as Error).message, /mask byte above 63/);
  }
  assert.throws(() => recordsToImages(batchOf(rec.subarray(1), S, true, false), 1), /must hold 128 bytes/);
  const noVariant = batchOf(rec, S, false, false);
  assert.throws(() => recordsToImages(noVariant, 1), /neither original nor masked/);
  // a flag left out is named on the TypeScript side (the addon would only say the key is missing)
  const b = batchOf(rec, S, true, false);
  const { masked: _left, ...pixels } = b.pixels;
  assert.throws(
    () => recordsToImages({ ...b, pixels: pixels as typeof b.pixels }, 1),
    (e: Error) => e instanceof TypeError && /x\.pixels\.masked must be a boolean/.test(e.message),
  );
});

test('model ops on records equal the same ops on planeToTensor floats', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const n = 2;
  const S = clip.imageSize;
  const rec = records(n, S, 7);
  try {
    const fo = await clip.encodeImage(reference(rec, n, S, false), n);
    const fm = await clip.encodeImage(reference(rec, n, S, true), n);
    const both = await clip.encodeImage(batchOf(rec, S, true, true), n);
    assert.ok(maxAbsDiff(both.subarray(0, fo.length), fo) <= 1e-5);
    assert.ok(maxAbsDiff(both.subarray(fo.length), fm) <= 1e-5);
  } finally {
    clip.dispose();
  }
  const labels = Float32Array.from({ length: n * 5 }, (_, i) => i % 2);
  const a = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 3, lrEncoder: 1e-3 });
  const b = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 3, lrEncoder: 1e-3 });
  try {
    const la = await a.trainStep(batchOf(rec, S, false, true), n, labels);
    const lb = await b.trainStep(reference(rec, n, S, true), n, labels);
    assert.ok(Math.abs(la.loss - lb.loss) <= 1e-6, `${la.loss} vs ${lb.loss}`);
    const pa = await a.predict(batchOf(rec, S, true, false), n);
    const pb = await b.predict(reference(rec, n, S, false), n);
    assert.ok(maxAbsDiff(pa, pb) <= 1e-5);
    assert.throws(() => a.trainStep(batchOf(rec, S, true, true), n, labels), /one variant/);
  } finally {
    a.dispose();
    b.dispose();
  }
});

/**
 * Starts `op` on a fresh input from `make`, lets the op reach its worker, then transfers the input's
 * ArrayBuffer away and runs GC, three times; every result must equal `want`. Returns whether JS saw the
 * buffer detached.
 */
async function survivesTransfer(
  make: () => Uint8Array | Float32Array,
  op: (input: Uint8Array | Float32Array) => Promise<Float32Array>,
  want: Float32Array,
): Promise<boolean> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let detached = true;
  for (let k = 0; k < 3; k++) {
    const input = make();
    const p = op(input);
    await new Promise((r) => setImmediate(r));
    structuredClone(input.buffer, { transfer: [input.buffer] });
    detached &&= input.length === 0;
    gc();
    assert.is(maxAbsDiff(await p, want), 0);
  }
  return detached;
}

test('an input transferred and collected while the op runs does not reach the worker', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const S = clip.imageSize;
    const n = 4;
    const x = reference(records(n, S, 11), n, S, true);
    const want = await clip.encodeImage(x.slice(), n);
    const detached = await survivesTransfer(
      () => x.slice(),
      (y) => clip.encodeImage(y as Float32Array, n),
      want,
    );
    assert.ok(detached, 'the buffer was not detached');
  } finally {
    clip.dispose();
  }
});

test('a NaN or negative label mask is refused before the step; the weights stay as they were', async () => {
  requireModel();
  const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 4, lrEncoder: 1e-2 });
  try {
    const S = 224;
    const n = 2;
    const x = reference(records(n, S, 5), n, S, false);
    const labels = new Float32Array(n * 5).fill(1);
    const p0 = await c.predict(x, n);
    for (const bad of [new Float32Array(n * 5).fill(Number.NaN), new Float32Array(n * 5).fill(-1)]) {
      try {
        await c.trainStep(x, n, labels, bad);
        assert.unreachable('bad labelMask accepted');
      } catch (e) {
        assert.match((e as Error).message, /labelMask/);
        assert.is((e as { code?: string }).code, 'ERR_INVALID_ARG');
      }
    }
    assert.is(maxAbsDiff(p0, await c.predict(x, n)), 0);
    assert.ok((await c.predict(x, n)).every(Number.isFinite));
  } finally {
    c.dispose();
  }
});

test('weights-only checkpoint: about a third of the full state, restores predictions and the step count', async () => {
  requireModel();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-ckpt-'));
  const a = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 5, lrEncoder: 1e-3 });
  const b = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 6, lrEncoder: 1e-3 });
  try {
    const S = 224;
    const n = 2;
    const x = reference(records(n, S, 9), n, S, false);
    const labels = Float32Array.from({ length: n * 5 }, (_, i) => i % 2);
    await a.trainStep(x, n, labels);
    await a.save(join(dir, 'full.ckpt'));
    await a.save(join(dir, 'weights.ckpt'), { weightsOnly: true });
    const full = statSync(join(dir, 'full.ckpt')).size;
    const weights = statSync(join(dir, 'weights.ckpt')).size;
    assert.ok(weights < full * 0.4, `weights-only ${weights} B vs full ${full} B`);
    await b.load(join(dir, 'weights.ckpt'));
    assert.is(maxAbsDiff(await a.predict(x, n), await b.predict(x, n)), 0);
    // The step count comes from the file; b keeps its own (empty) AdamW state and trains on from it.
    assert.is(b.info.step, a.info.step);
    assert.is((await b.trainStep(x, n, labels)).step, a.info.step + 1);
  } finally {
    a.dispose();
    b.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('records in addon-owned host memory are borrowed, and stay valid when JS transfers and drops them', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const S = clip.imageSize;
    const n = 3;
    const rec = records(n, S, 13);
    const want = await clip.encodeImage(batchOf(rec, S, true, true), n);
    // Transferring may move or copy an external buffer; either way JS lets go of it and GC runs.
    const lent = () => {
      const b = hostBytes(rec.length);
      b.set(rec);
      return b;
    };
    await survivesTransfer(lent, (b) => clip.encodeImage(batchOf(b as Uint8Array, S, true, true), n), want);
    // A view at an offset inside a host buffer is borrowed too.
    const big = hostBytes(rec.length + 64);
    big.set(rec, 64);
    assert.is(maxAbsDiff(await clip.encodeImage(batchOf(big.subarray(64), S, true, true), n), want), 0);
  } finally {
    clip.dispose();
  }
});

test('a checkpoint whose last tensor has another shape changes nothing (all-or-nothing load)', async () => {
  requireModel();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-ckpt-'));
  const a = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 7 });
  const b = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 8 });
  try {
    const good = join(dir, 'a.ckpt');
    const bad = join(dir, 'bad.ckpt');
    await a.save(good);
    // head.bias is read last: before the fix every encoder tensor and head.weight were already copied.
    const py = spawnSync(
      python(),
      [
        '-c',
        [
          'import sys, torch',
          'm = torch.jit.load(sys.argv[1])',
          "t = m.params._c.getattr('head.bias')",
          "m.params._c.setattr('head.bias', torch.zeros(t.shape[0] + 1))",
          'm.save(sys.argv[2])',
        ].join('\n'),
        good,
        bad,
      ],
      { encoding: 'utf8' },
    );
    assert.is(py.status, 0, py.stderr);
    const x = reference(records(2, 224, 3), 2, 224, false);
    const before = await b.predict(x, 2);
    const stepBefore = b.info.step;
    try {
      await b.load(bad);
      assert.unreachable('a checkpoint with a wrong shape was loaded');
    } catch (e) {
      assert.match((e as Error).message, /head\.bias has another shape/);
    }
    assert.is(maxAbsDiff(before, await b.predict(x, 2)), 0, 'the failed load changed the model');
    assert.is(b.info.step, stepBefore);
    await b.load(good);
    assert.is(maxAbsDiff(await a.predict(x, 2), await b.predict(x, 2)), 0);
  } finally {
    a.dispose();
    b.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('AdamW steps (fused kernel) match torch.optim.AdamW in Python on the same weights and batches', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-adamw-'));
  const c = await Classifier.create({ inputDim: 8, device: 'cpu', lrHead: 0.05, weightDecay: 0.1, seed: 9 });
  try {
    const x = Float32Array.from({ length: 4 * 8 }, (_, i) => Math.sin(i * 0.7));
    const y = Float32Array.from({ length: 4 * 5 }, (_, i) => ((i * 7) % 3 === 0 ? 1 : 0));
    await c.save(join(dir, 'before.ckpt'));
    for (let k = 0; k < 3; k++) await c.trainStep(x, 4, y);
    await c.save(join(dir, 'after.ckpt'));
    const script = [
      'import sys, json, torch, torch.nn.functional as F',
      'd, x, y = sys.argv[1], torch.tensor(json.loads(sys.argv[2]), dtype=torch.float32).reshape(4, 8), torch.tensor(json.loads(sys.argv[3]), dtype=torch.float32).reshape(4, 5)',
      'get = lambda f, k: torch.jit.load(f).params._c.getattr(k)',
      "w, b = [get(d + '/before.ckpt', k).clone().requires_grad_() for k in ('head.weight', 'head.bias')]",
      'opt = torch.optim.AdamW([w, b], lr=0.05, weight_decay=0.1)',
      'for _ in range(3):',
      '    opt.zero_grad(); F.binary_cross_entropy_with_logits(x @ w.T + b, y).backward(); opt.step()',
      "ref = [get(d + '/after.ckpt', k) for k in ('head.weight', 'head.bias')]",
      'print(max((a - r).abs().max().item() for a, r in zip((w, b), ref)))',
    ].join('\n');
    const py = spawnSync(
      python(),
      ['-c', script, dir, JSON.stringify(Array.from(x)), JSON.stringify(Array.from(y))],
      {
        encoding: 'utf8',
      },
    );
    assert.is(py.status, 0, py.stderr);
    const diff = Number(py.stdout.trim());
    assert.ok(diff <= 1e-6, `addon vs torch.optim.AdamW after 3 steps: max |diff| ${diff}`);
  } finally {
    c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
