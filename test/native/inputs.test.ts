/**
 * Inputs are taken when the call is made (ts/model/hold.ts): reusing, overwriting or transferring an
 * input synchronously right after the call returned does not change what the op computes, for images,
 * cache records and their pixel spec, labels and label masks, token ids, region bits and attribution
 * baselines. Before, the copy happened when the per-model queue started the op (a microtask later at
 * the earliest): a reused buffer gave the other image's embedding, a transferred one ERR_INVALID_ARG.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolvePreprocess } from '../../ts/images/preprocess.js';
import { paintTable } from '../../ts/masks/overlay.js';
import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { hostBytes, type RecordBatch } from '../../ts/model/records.js';
import { loadTokenizer } from '../../ts/model/tokenizer.js';
import { MODEL_DIR, maxAbsDiff, requireModel, toyBatch } from './helpers.js';

const pp = resolvePreprocess({});

function recordsOf(n: number, S: number, seed: number): Uint8Array {
  const out = new Uint8Array(n * 2 * S * S);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < S * S; p++) {
      out[i * 2 * S * S + p] = (p * 7 + i * 31 + seed * 13) % 256;
      if ((p + seed) % 17 === 0) out[i * 2 * S * S + S * S + p] = 1 + ((p + i) % 7);
    }
  return out;
}

function batch(records: Uint8Array, S: number): RecordBatch {
  return {
    kind: 'records',
    records,
    size: S,
    pixels: { mean: [...pp.mean], std: [...pp.std], paint: paintTable({}), original: false, masked: true },
  };
}

/** Transfers (detaches) the buffer behind `a`, as postMessage(…, [buffer]) does. */
function transfer(a: ArrayBufferView): void {
  structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
  assert.is(a.byteLength, 0, 'the buffer was not detached');
}

test('encodeImage: float images reused or transferred right after the call', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const S = clip.imageSize;
    const a = toyBatch(2, S).x;
    const b = a.map((v) => -v);
    const wantA = await clip.encodeImage(a, 2);
    const wantB = await clip.encodeImage(b, 2);
    // Two calls queued back to back; the buffer is overwritten before either starts.
    const x = a.slice();
    const first = clip.encodeImage(x, 2);
    x.set(b);
    const second = clip.encodeImage(x, 2);
    x.fill(Number.NaN);
    assert.is(maxAbsDiff(await first, wantA), 0, 'the reused buffer changed the first call');
    assert.is(maxAbsDiff(await second, wantB), 0);
    const y = a.slice();
    const third = clip.encodeImage(y, 2);
    transfer(y);
    assert.is(maxAbsDiff(await third, wantA), 0, 'a transferred input failed or changed the result');
  } finally {
    await clip.dispose();
  }
});

test('encodeImage: cache records and their pixel spec reused or transferred right after the call', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const S = clip.imageSize;
    const rec = recordsOf(2, S, 1);
    const want = await clip.encodeImage(batch(rec, S), 2);
    const x = batch(rec.slice(), S);
    const p = clip.encodeImage(x, 2);
    x.records.set(recordsOf(2, S, 2));
    x.pixels.paint.fill(0.5);
    x.pixels.mean[0] = 0;
    assert.is(maxAbsDiff(await p, want), 0, 'reused records or pixel spec changed the result');
    const y = batch(rec.slice(), S);
    const q = clip.encodeImage(y, 2);
    transfer(y.records);
    assert.is(maxAbsDiff(await q, want), 0);
  } finally {
    await clip.dispose();
  }
});

test('hostBytes records: borrowed, not copied; overwriting after the promise settled is safe', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const S = clip.imageSize;
    const rec = recordsOf(2, S, 3);
    const want = await clip.encodeImage(batch(rec, S), 2);
    const host = hostBytes(rec.length);
    host.set(rec);
    const got = await clip.encodeImage(batch(host, S), 2);
    host.set(recordsOf(2, S, 4)); // the op has settled: the buffer is the caller's again
    assert.is(maxAbsDiff(got, want), 0);
    // Transferring a host buffer right after the call is safe too: the op holds its own reference.
    host.set(rec);
    const p = clip.encodeImage(batch(host, S), 2);
    structuredClone(host.buffer, { transfer: [host.buffer as ArrayBuffer] });
    assert.is(maxAbsDiff(await p, want), 0);
  } finally {
    await clip.dispose();
  }
});

test('encodeText: token ids reused or transferred right after the call', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const tok = await loadTokenizer(MODEL_DIR);
    const ids = tok.encode(['left lower lobe atelectasis', 'no pleural effusion']);
    const other = tok.encode(['cardiomegaly', 'pulmonary edema']);
    const want = await clip.encodeText(ids, 2);
    const x = ids.slice();
    const p = clip.encodeText(x, 2);
    x.set(other);
    assert.is(maxAbsDiff(await p, want), 0, 'reused token ids changed the result');
    const y = ids.slice();
    const q = clip.encodeText(y, 2);
    transfer(y);
    assert.is(maxAbsDiff(await q, want), 0);
  } finally {
    await clip.dispose();
  }
});

test('trainStep: images, labels and label mask reused right after the call train on the values at the call', async () => {
  requireModel();
  const make = () =>
    Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', lrEncoder: 1e-3, lrHead: 1e-2, seed: 5 });
  const ref = await make();
  const c = await make();
  try {
    const S = 224;
    const { x, y } = toyBatch(4, S);
    const mask = Float32Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? 0 : 1));
    const want = await ref.trainStep(x, 4, y, mask);
    const xs = x.slice();
    const ys = y.slice();
    const ms = mask.slice();
    const p = c.trainStep(xs, 4, ys, ms);
    xs.fill(0);
    ys.fill(1);
    ms.fill(1);
    const got = await p;
    assert.is(got.loss, want.loss, 'the step saw the overwritten inputs');
    assert.is(maxAbsDiff(await c.predict(x, 4), await ref.predict(x, 4)), 0);
    // Transferred right after the call.
    const want2 = await ref.trainStep(x, 4, y);
    const x2 = x.slice();
    const y2 = y.slice();
    const q = c.trainStep(x2, 4, y2);
    transfer(x2);
    transfer(y2);
    assert.is((await q).loss, want2.loss);
  } finally {
    await ref.dispose();
    await c.dispose();
  }
});

test('predict and attribute: inputs and baseline reused right after the call', async () => {
  requireModel();
  const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 6 });
  try {
    const { x } = toyBatch(1, 224);
    const want = await c.predict(x, 1);
    const xs = x.slice();
    const p = c.predict(xs, 1);
    xs.fill(3);
    assert.is(maxAbsDiff(await p, want), 0);
    const baseline = new Float32Array(3 * 224 * 224).fill(-0.5);
    const opts = { method: 'ig' as const, steps: 2, baseline };
    const wantMap = (await c.attribute(x, 1, 0, opts)).map;
    const bs = baseline.slice();
    const xa = x.slice();
    const q = c.attribute(xa, 1, 0, { ...opts, baseline: bs });
    bs.fill(0.7);
    xa.fill(0);
    assert.is(maxAbsDiff((await q).map, wantMap), 0, 'the reused baseline or image changed the map');
  } finally {
    await c.dispose();
  }
});

test.run();
