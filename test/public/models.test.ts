/**
 * The model classes of the package root over the addon, with the tiny exports in models/: ClipModel
 * and the tokenizer against the Python reference, Classifier training, saving and loading, cache
 * records as input, the segmenter, attribution, diagnostics and threads. Imports only the root (the
 * fixtures' reference files come from the test helpers).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ATTRIBUTION_METHODS,
  Classifier,
  ClipModel,
  diagnostics,
  hostBytes,
  loadTokenizer,
  ProcessGroup,
  type RecordBatch,
  recordsToImages,
  Segmenter,
  setThreads,
} from '../../ts/index.js';
import { SEG_EXPORT } from '../install/helpers.js';
import { MODEL_DIR, maxAbsDiff, readF32, reference, toyBatch } from '../native/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-public-models-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('diagnostics and setThreads', () => {
  const d = diagnostics();
  assert.match(d.torch.version, /^\d+\.\d+/);
  assert.type(d.cuda.available, 'boolean');
  assert.ok(d.threads.intraOp >= 1);
  const before = d.threads.requested;
  setThreads(1);
  assert.is(diagnostics().threads.requested, 1);
  assert.throws(() => setThreads(0), RangeError);
  if (before > 0) setThreads(before);
});

test('ClipModel and loadTokenizer equal the Python reference of the export', async () => {
  const ref = reference();
  const tok = loadTokenizer(MODEL_DIR);
  const ids = tok.encode(ref.prompts);
  assert.is(ids.length, ref.prompts.length * tok.contextLength);
  assert.equal(Array.from(ids.subarray(0, tok.contextLength), Number), ref.tokenIds[0]);
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    assert.is(clip.device, 'cpu');
    assert.is(clip.contextLength, tok.contextLength);
    const n = ref.images.shape[0]!;
    const img = await clip.encodeImage(readF32(ref.images), n);
    assert.is(img.length, n * clip.embedDim);
    assert.ok(maxAbsDiff(img, readF32(ref.imageEmbeddings)) <= 1e-4);
    const txt = await clip.encodeText(ids, ref.prompts.length);
    assert.ok(maxAbsDiff(txt, readF32(ref.textEmbeddings)) <= 1e-4);
    assert.ok(Math.abs(clip.logitScale - Math.exp(ref.logitScale)) < 1e-4);
  } finally {
    await clip.dispose();
  }
  assert.ok(clip.disposed);
  assert.throws(() => clip.encodeText(ids, ref.prompts.length), /disposed/);
});

test('cache records: recordsToImages paints and normalises as Eq. 1 says; the model takes them as input', async () => {
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const S = clip.imageSize;
    const hw = S * S;
    const records = hostBytes(2 * hw);
    records.fill(128, 0, hw); // gray plane
    records.fill(0, hw); // contour bits (addon memory is not zeroed)
    records[hw] = 1; // contour bit of the right lung on the first pixel
    const paint = new Float32Array(24);
    paint.set([0.5, 0, 0], 3); // bit 1 → red + 0.5
    const mean = clip.meta.mean as [number, number, number];
    const std = clip.meta.std as [number, number, number];
    const batch = (original: boolean, masked: boolean): RecordBatch => ({
      kind: 'records',
      records,
      size: S,
      pixels: { mean, std, paint, original, masked },
    });
    const both = await recordsToImages(batch(true, true), 1);
    assert.is(both.length, 2 * 3 * hw);
    const norm = (v: number, c: number) => Math.fround((v - mean[c]!) / std[c]!);
    const g = 128 / 255;
    // original first, then masked; only the red channel of the painted pixel moves (clipped at 1)
    assert.ok(Math.abs(both[0]! - norm(g, 0)) < 1e-6);
    assert.ok(Math.abs(both[3 * hw]! - norm(Math.min(1, g + 0.5), 0)) < 1e-6);
    assert.ok(Math.abs(both[3 * hw + hw]! - norm(g, 1)) < 1e-6);
    assert.ok(Math.abs(both[3 * hw + 1]! - norm(g, 0)) < 1e-6);
    const fromRecords = await clip.encodeImage(batch(false, true), 1);
    const fromFloats = await clip.encodeImage(both.slice(3 * hw), 1);
    assert.ok(maxAbsDiff(fromRecords, fromFloats) <= 1e-5);
  } finally {
    await clip.dispose();
  }
});

test('Classifier: training lowers the loss, save/load restores predictions bit for bit', async () => {
  const feat = 6;
  const n = 8;
  const x = new Float32Array(n * feat).map((_, i) => ((Math.floor(i / feat) % 2) * 2 - 1) * (1 + (i % 3)));
  const y = new Float32Array(n * 5).map((_, i) => Math.floor(i / 5) % 2);
  const clf = await Classifier.create({ inputDim: feat, device: 'cpu', lrHead: 0.1, seed: 1 });
  const path = join(tmp, 'head.ckpt');
  try {
    assert.ok(clf.headOnly);
    assert.is(clf.inputDim, feat);
    assert.is(clf.numLabels, 5);
    const first = await clf.trainStep(x, n, y);
    let last = first;
    for (let i = 0; i < 30; i++) last = await clf.trainStep(x, n, y);
    assert.is(last.step, 31);
    assert.ok(last.loss < first.loss / 2, `loss ${first.loss} → ${last.loss}`);
    const p = await clf.predict(x, n);
    assert.is(p.length, n * 5);
    for (let i = 0; i < n * 5; i++) assert.is(p[i]! > 0.5 ? 1 : 0, y[i], `row ${Math.floor(i / 5)}`);
    await clf.save(path);
    const again = await Classifier.create({ inputDim: feat, device: 'cpu', seed: 2 });
    try {
      assert.not.equal(await again.predict(x, n), p);
      await again.load(path);
      assert.equal(await again.predict(x, n), p);
      assert.is(again.info.step, 31);
    } finally {
      await again.dispose();
    }
  } finally {
    await clf.dispose();
  }
  assert.throws(() => clf.predict(x, n), /disposed/);
});

test('Classifier over the image tower: embeddings, probabilities and attribution maps', async () => {
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const S = clip.imageSize;
  const D = clip.embedDim;
  await clip.dispose();
  const clf = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', freezeEncoder: true, seed: 0 });
  try {
    assert.not.ok(clf.headOnly);
    const { x, y } = toyBatch(2, S);
    const emb = await clf.embed(x, 2);
    assert.is(emb.length, 2 * D);
    const p = await clf.predict(x, 2);
    assert.is(p.length, 2 * 5);
    assert.ok(p.every((v) => v > 0 && v < 1));
    const step = await clf.trainStep(x, 2, y);
    assert.ok(Number.isFinite(step.loss) && step.loss > 0);
    assert.equal([...ATTRIBUTION_METHODS], ['gradient', 'smoothgrad', 'ig']);
    const a = await clf.attribute(x, 2, 1, { method: 'ig', steps: 4 });
    assert.is(a.method, 'ig');
    assert.is(a.rows, 2);
    assert.is(a.map.length, 2 * S * S);
    assert.ok(a.map.every((v) => v >= 0));
    assert.is(a.score.length, 2);
  } finally {
    await clf.dispose();
  }
});

test('Segmenter: region bits per pixel; a training step moves the weights', async () => {
  const seg = await Segmenter.load(SEG_EXPORT, { device: 'cpu' });
  try {
    const S = seg.size;
    const x = new Float32Array(2 * 3 * S * S).map((_, i) => Math.sin(i * 0.01));
    const before = await seg.predictMasks(x, 2);
    assert.is(before.length, 2 * S * S);
    assert.ok(before.every((b) => b <= 7));
    const bits = new Uint8Array(2 * S * S).fill(1);
    const r = await seg.trainStep(x, 2, bits);
    assert.is(r.step, 1);
    assert.is(seg.step, 1);
    assert.ok(seg.trained);
    assert.ok(r.loss > 0 && r.dice >= 0 && r.dice <= 1);
  } finally {
    await seg.dispose();
  }
});

test('ProcessGroup: a group of one all-reduces to its own values', async () => {
  const backends = ProcessGroup.backends();
  assert.type(backends.gloo, 'boolean');
  if (!backends.gloo) return; // built without gloo's headers (libgloo-dev): nothing to run on CPU
  const port = await new Promise<number>((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => ok(p));
    });
  });
  const g = await ProcessGroup.create({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: port });
  try {
    assert.is(g.rank, 0);
    assert.is(g.worldSize, 1);
    assert.is(g.backend, 'gloo');
    assert.equal(Array.from(await g.allReduce(new Float32Array([1, 2.5]))), [1, 2.5]);
  } finally {
    await g.close();
  }
});

test.run();
