/** Classifier training: loss goes down, freezing keeps encoder weights, head-only mode. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Classifier } from '../../ts/model/classifier.js';
import { MODEL_DIR, maxAbsDiff, requireModel, toyBatch } from './helpers.js';

const N = 16;

test('a few trainStep calls on a learnable toy batch lower the loss', async () => {
  requireModel();
  const c = await Classifier.create({
    modelDir: MODEL_DIR,
    device: 'cpu',
    lrEncoder: 1e-3,
    lrHead: 1e-2,
    seed: 1,
    gradClip: 1,
  });
  try {
    const { x, y } = toyBatch(N, 224);
    const losses: number[] = [];
    for (let i = 0; i < 6; i++) losses.push((await c.trainStep(x, N, y)).loss);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses[5]! < losses[0]! * 0.8, `losses ${losses.join(', ')}`);
    const p = await c.predict(x, N);
    assert.is(p.length, N * 5);
    assert.ok(p.every((v) => v >= 0 && v <= 1));
  } finally {
    c.dispose();
  }
});

test('frozen encoder: encoder features do not change, head does', async () => {
  const c = await Classifier.create({
    modelDir: MODEL_DIR,
    device: 'cpu',
    freezeEncoder: true,
    lrHead: 5e-2,
    seed: 2,
  });
  try {
    const { x, y } = toyBatch(8, 224);
    const f0 = await c.embed(x, 8);
    const p0 = await c.predict(x, 8);
    for (let i = 0; i < 3; i++) await c.trainStep(x, 8, y);
    assert.is(maxAbsDiff(f0, await c.embed(x, 8)), 0, 'encoder features changed');
    assert.ok(maxAbsDiff(p0, await c.predict(x, 8)) > 1e-4, 'head did not change');
  } finally {
    c.dispose();
  }
});

test('unfrozen encoder: encoder features change', async () => {
  const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', lrEncoder: 1e-3, seed: 3 });
  try {
    const { x, y } = toyBatch(8, 224);
    const f0 = await c.embed(x, 8);
    await c.trainStep(x, 8, y);
    assert.ok(maxAbsDiff(f0, await c.embed(x, 8)) > 0, 'encoder did not train');
  } finally {
    c.dispose();
  }
});

test('label mask: fully masked labels give zero loss and leave the head unchanged', async () => {
  const c = await Classifier.create({ inputDim: 16, device: 'cpu', lrHead: 0.1, weightDecay: 0, seed: 4 });
  try {
    const x = Float32Array.from({ length: 4 * 16 }, (_, i) => Math.sin(i));
    const y = new Float32Array(4 * 5).fill(1);
    const p0 = await c.predict(x, 4);
    const r = await c.trainStep(x, 4, y, new Float32Array(4 * 5));
    assert.is(r.loss, 0);
    assert.is(maxAbsDiff(p0, await c.predict(x, 4)), 0);
    const half = Float32Array.from({ length: 20 }, (_, i) => (i % 5 === 0 ? 1 : 0));
    assert.ok((await c.trainStep(x, 4, y, half)).loss > 0);
  } finally {
    c.dispose();
  }
});

test('head-only mode learns over feature vectors', async () => {
  const c = await Classifier.create({ inputDim: 32, device: 'cpu', lrHead: 0.05, seed: 5 });
  try {
    assert.ok(c.headOnly);
    assert.is(c.inputDim, 32);
    const n = 32;
    const x = new Float32Array(n * 32);
    const y = new Float32Array(n * 5);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 32; j++) x[i * 32 + j] = ((i * 7 + j * 3) % 11) / 11 - 0.5;
      for (let k = 0; k < 5; k++) y[i * 5 + k] = x[i * 32 + k]! > 0 ? 1 : 0;
    }
    const first = (await c.trainStep(x, n, y)).loss;
    let last = first;
    for (let i = 0; i < 30; i++) last = (await c.trainStep(x, n, y)).loss;
    assert.ok(last < first * 0.7, `${first} -> ${last}`);
    try {
      await c.embed(x, n);
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, /head-only/);
    }
  } finally {
    c.dispose();
  }
});

test.run();
