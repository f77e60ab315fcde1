/** save/load of the whole trainable state: same predictions, bit-for-bit resume on CPU. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NativeError } from '../../ts/common/errors.js';
import { Classifier, type ClassifierCreateOptions } from '../../ts/model/classifier.js';
import { Segmenter } from '../../ts/model/segmenter.js';
import { expectReject, MODEL_DIR, ROOT, requireModel, toyBatch } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-state-'));
const N = 8;

for (const [name, opts] of [
  ['fine-tune', { modelDir: MODEL_DIR, lrEncoder: 1e-3, lrHead: 1e-2, gradClip: 1, seed: 7 }],
  ['head-only', { inputDim: 24, lrHead: 1e-2, seed: 8 }],
] as [string, ClassifierCreateOptions][]) {
  const batch = () => {
    if (opts.modelDir) return toyBatch(N, 224);
    const x = Float32Array.from({ length: N * 24 }, (_, i) => Math.cos(i * 0.7));
    const y = Float32Array.from({ length: N * 5 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    return { x, y };
  };

  test(`${name}: save -> load gives identical predictions`, async () => {
    if (opts.modelDir) requireModel();
    const { x, y } = batch();
    const a = await Classifier.create({ ...opts, device: 'cpu' });
    const b = await Classifier.create({ ...opts, device: 'cpu', seed: 99 });
    try {
      await a.trainStep(x, N, y);
      await a.trainStep(x, N, y);
      const path = join(tmp, `${name}-a.pt`);
      await a.save(path);
      await b.load(path);
      assert.equal(Array.from(await b.predict(x, N)), Array.from(await a.predict(x, N)));
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  test(`${name}: resume gives the same next step as no interruption`, async () => {
    const { x, y } = batch();
    const straight = await Classifier.create({ ...opts, device: 'cpu' });
    const first = await Classifier.create({ ...opts, device: 'cpu' });
    const resumed = await Classifier.create({ ...opts, device: 'cpu', seed: 123 });
    try {
      for (let i = 0; i < 3; i++) await straight.trainStep(x, N, y);
      const expected = await straight.trainStep(x, N, y);
      for (let i = 0; i < 3; i++) await first.trainStep(x, N, y);
      const path = join(tmp, `${name}-resume.pt`);
      await first.save(path);
      await resumed.load(path);
      const got = await resumed.trainStep(x, N, y);
      assert.is(got.loss, expected.loss);
      assert.is(got.step, expected.step);
      assert.equal(Array.from(await resumed.predict(x, N)), Array.from(await straight.predict(x, N)));
    } finally {
      straight.dispose();
      first.dispose();
      resumed.dispose();
    }
  });
}

test('load rejects a state saved with another configuration, and a missing file', async () => {
  const a = await Classifier.create({ inputDim: 24, device: 'cpu' });
  const b = await Classifier.create({ inputDim: 12, device: 'cpu' });
  try {
    const path = join(tmp, 'mismatch.pt');
    await a.save(path);
    await expectReject(b.load(path), /another configuration/);
    await expectReject(b.load(join(tmp, 'nope.pt')), /cannot read classifier state/);
    await b.predict(new Float32Array(12), 1);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test("load of a segmenter's state or clip.pt names the file: not a classifier checkpoint", async () => {
  // Before: a bare c10 error ("__torch__.Module … does not have a field with name 'headOnly'").
  requireModel();
  const segDir = process.env['CXRMASK_TEST_SEGMENTER'] ?? join(ROOT, 'models', 'seg-tiny');
  const seg = await Segmenter.load(segDir, { device: 'cpu' });
  const head = await Classifier.create({ inputDim: 64, device: 'cpu' });
  const ft = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu' });
  try {
    const segState = join(tmp, 'seg-state.pt');
    await seg.save(segState);
    const clipPt = join(MODEL_DIR, 'clip.pt');
    const before = await head.predict(new Float32Array(64).fill(0.25), 1);
    for (const [c, path, why] of [
      [head, segState, "(it records kind 'segmenter')"],
      [ft, segState, "(it records kind 'segmenter')"],
      [head, clipPt, '(no format field)'],
      [ft, clipPt, '(no format field)'],
    ] as const) {
      const e = await expectReject(c.load(path), /is not a classifier checkpoint/);
      assert.instance(e, NativeError);
      assert.is((e as NativeError).code, 'ERR_INVALID_ARG');
      assert.is(e.message, `Classifier.load: ${path} is not a classifier checkpoint ${why}`);
    }
    // refused before anything changed
    assert.equal(await head.predict(new Float32Array(64).fill(0.25), 1), before);
  } finally {
    await seg.dispose();
    await head.dispose();
    await ft.dispose();
  }
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
