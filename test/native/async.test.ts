/** Native work runs off the JS thread; concurrent calls on one model queue instead of crashing. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { expectReject, MODEL_DIR, requireModel, toyBatch } from './helpers.js';

test('the event loop keeps ticking (a timer fires) while encodeImage runs', async () => {
  requireModel();
  const model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const n = 48;
    const { x } = toyBatch(n, 224);
    await model.encodeImage(x.subarray(0, 3 * 224 * 224), 1); // warm-up
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    let settled = false;
    const p = model.encodeImage(x, n).then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 5));
    const ticksWhileRunning = ticks;
    const settledEarly = settled;
    const out = await p;
    clearInterval(timer);
    assert.is(out.length, n * model.embedDim);
    if (!settledEarly) assert.ok(ticksWhileRunning > 0, 'no timer tick while the native op ran');
    assert.ok(ticks > 0, `elapsed ${performance.now() - t0} ms, ${ticks} ticks`);
  } finally {
    model.dispose();
  }
});

test('concurrent calls on one model are queued and all resolve', async () => {
  const model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 1 });
  try {
    const { x, y } = toyBatch(4, 224);
    const single = await model.encodeImage(x, 4);
    const outs = await Promise.all(Array.from({ length: 6 }, () => model.encodeImage(x, 4)));
    for (const o of outs) assert.equal(Array.from(o), Array.from(single));
    const order: string[] = [];
    await Promise.all([
      c.trainStep(x, 4, y).then(() => order.push('train1')),
      c.predict(x, 4).then(() => order.push('predict')),
      c.trainStep(x, 4, y).then(() => order.push('train2')),
    ]);
    assert.equal(order, ['train1', 'predict', 'train2']);
  } finally {
    model.dispose();
    c.dispose();
  }
});

test('dispose while an op runs: the op finishes, later calls throw', async () => {
  const model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const { x } = toyBatch(8, 224);
  const p = model.encodeImage(x, 8);
  model.dispose();
  assert.is((await p).length, 8 * model.embedDim);
  assert.ok(model.disposed);
  await expectReject(() => model.encodeImage(x, 8), /disposed/);
});

test('dispose() settles after queued calls: they resolve first, then dispose, then calls throw', async () => {
  const model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const c = await Classifier.create({ inputDim: 8, device: 'cpu' });
  const { x } = toyBatch(4, 224);
  const order: string[] = [];
  const running = model.encodeImage(x, 4).then(() => order.push('running'));
  const queued = model.encodeImage(x, 4).then(() => order.push('queued'));
  const headQueued = c.predict(new Float32Array(16), 2).then(() => order.push('head'));
  const disposed = Promise.all([
    model.dispose().then(() => order.push('clip disposed')),
    c.dispose().then(() => order.push('classifier disposed')),
  ]);
  assert.is(model.dispose(), model.dispose(), 'one promise however often dispose() is called');
  await Promise.all([running, queued, headQueued, disposed]);
  assert.ok(order.indexOf('queued') < order.indexOf('clip disposed'), order.join(','));
  assert.ok(order.indexOf('running') < order.indexOf('queued'), order.join(','));
  assert.ok(order.indexOf('head') < order.indexOf('classifier disposed'), order.join(','));
  await expectReject(() => model.encodeImage(x, 4), /ClipModel is disposed/);
  await expectReject(() => c.predict(new Float32Array(16), 2), /Classifier is disposed/);
  assert.throws(() => model.device, /disposed/);
});

test('await using frees the model when the block ends', async () => {
  let seen: ClipModel | undefined;
  {
    await using model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
    seen = model;
    assert.ok(!model.disposed);
  }
  assert.ok(seen.disposed);
});

test.run();
