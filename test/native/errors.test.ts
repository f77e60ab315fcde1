/** Bad input gives a clear JS error; the process survives and the model still works. */

import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NativeError } from '../../ts/common/errors.js';

import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { diagnostics } from '../../ts/model/diagnostics.js';
import { loadNative } from '../../ts/native.js';
import { expectReject, MODEL_DIR, RAW_HEAD_OPTIONS, readF32, reference, requireModel } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-err-'));
let model: ClipModel;
let good: Float32Array;

test.before(async () => {
  requireModel();
  model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  good = readF32(reference().images);
});

const stillWorks = async () => {
  const out = await model.encodeImage(good, 2);
  assert.is(out.length, 2 * model.embedDim);
  assert.ok(out.every(Number.isFinite));
};

test('missing model folder / missing clip.pt', async () => {
  await expectReject(ClipModel.load(join(tmp, 'nope')), /no model\.json/);
  const dir = join(tmp, 'no-pt');
  rmSync(dir, { recursive: true, force: true });
  await import('node:fs').then((fs) => fs.mkdirSync(dir));
  copyFileSync(join(MODEL_DIR, 'model.json'), join(dir, 'model.json'));
  await expectReject(ClipModel.load(dir), /model file not found/);
  await stillWorks();
});

test('a file that is not TorchScript', async () => {
  const dir = mkdtempSync(join(tmp, 'bad-'));
  copyFileSync(join(MODEL_DIR, 'model.json'), join(dir, 'model.json'));
  writeFileSync(join(dir, 'clip.pt'), 'this is not a zip archive');
  const e = await expectReject(ClipModel.load(dir, { device: 'cpu' }), /cannot load TorchScript model/);
  assert.instance(e, NativeError);
  assert.is((e as NativeError).code, 'ERR_NATIVE');
  // withJsStack re-targets the stack onto the caller without changing the class or the code.
  assert.match(e.stack ?? '', /^NativeError: ClipModel\.load: /);
  assert.match(e.stack ?? '', /errors\.test\.ts/);
  await expectReject(Classifier.create({ modelDir: dir, device: 'cpu' }), /cannot load TorchScript model/);
  await stillWorks();
});

test('wrong shape', async () => {
  await expectReject(() => model.encodeImage(good, 3), /must hold 451584 values/);
  await expectReject(() => model.encodeImage(good.subarray(0, 100), 1), /must hold 150528 values/);
  await expectReject(() => model.encodeImage(good, 0), /n must be a positive integer/);
  await expectReject(() => model.encodeText(new BigInt64Array(5), 1), /ids must hold/);
  const c = await Classifier.create({ inputDim: 8, device: 'cpu' });
  await expectReject(() => c.trainStep(new Float32Array(16), 2, new Float32Array(5)), /labels must hold 10/);
  c.dispose();
  await stillWorks();
});

test('wrong dtype', async () => {
  await expectReject(
    () => model.encodeImage(new Float64Array(good) as unknown as Float32Array, 2),
    /Float32Array/,
  );
  await expectReject(
    () => model.encodeText(new Int32Array(10) as unknown as BigInt64Array, 1),
    /BigInt64Array/,
  );
  await expectReject(() => model.encodeImage([1, 2, 3] as unknown as Float32Array, 1), /Float32Array/);
  await stillWorks();
});

test('wrong dtype reaching the native layer directly is a TypeError, not a crash', async () => {
  const { loadNative } = await import('../../ts/native.js');
  const native = await loadNative().ClipModel.load(join(MODEL_DIR, 'clip.pt'), 'cpu');
  // Synchronous argument errors keep their JS type and carry ERR_INVALID_ARG (Node style).
  const thrown = (fn: () => unknown): Error & { code?: string } => {
    try {
      fn();
    } catch (err) {
      return err as Error & { code?: string };
    }
    throw new Error('expected a throw');
  };
  const te = thrown(() =>
    native.encodeImage(new Float64Array(4) as unknown as Float32Array, [1, 3, 2, 2], false),
  );
  assert.instance(te, TypeError);
  assert.match(te.message, /Float32Array/);
  assert.is(te.code, 'ERR_INVALID_ARG');
  const re = thrown(() => native.encodeText(new BigInt64Array(4), [4]));
  assert.instance(re, RangeError);
  assert.is(re.code, 'ERR_INVALID_ARG');
  // Checked when the call is made (the input is copied then), not in the worker.
  assert.throws(() => native.encodeImage(new Float32Array(5), [1, 3, 2, 2], false), /expected 12/);
  // A shape the model cannot take: the c10::Error surfaces as a JS error with its message.
  const e = await expectReject(
    native.encodeImage(new Float32Array(3 * 32 * 32), [1, 3, 32, 32], false),
    /.+/,
  );
  assert.instance(e, NativeError);
  assert.is((e as NativeError).code, 'ERR_TORCH');
  assert.not.match(e.message, /Exception raised from/);
  native.dispose();
  await stillWorks();
});

test('NaN input', async () => {
  const bad = good.slice();
  bad[1234] = Number.NaN;
  const e = await expectReject(model.encodeImage(bad, 2), /NaN or Inf/);
  assert.instance(e, NativeError);
  assert.is((e as NativeError).code, 'ERR_INVALID_ARG');
  const c = await Classifier.create({ inputDim: 4, device: 'cpu' });
  await expectReject(c.trainStep(Float32Array.of(1, 2, Number.NaN, 4), 1, new Float32Array(5)), /NaN or Inf/);
  await expectReject(
    c.trainStep(Float32Array.of(1, 2, 3, 4), 1, Float32Array.of(0, 1, Number.NaN, 0, 1)),
    /NaN or Inf/,
  );
  assert.ok((await c.trainStep(Float32Array.of(1, 2, 3, 4), 1, new Float32Array(5))).loss > 0);
  c.dispose();
  await stillWorks();
});

test('NaN and ±Inf anywhere in a float input are refused; the largest finite values, -0 and subnormals pass', async () => {
  const n = good.length;
  const asFloat = (bits: number) => new Float32Array(Uint32Array.of(bits).buffer)[0]!;
  // quiet and signalling NaNs of either sign, and the infinities, first, in the middle and last
  const bad = [
    Number.NaN,
    asFloat(0xffc00000),
    asFloat(0x7f800001),
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
  ];
  for (const v of bad)
    for (const at of [0, n >> 1, n - 1]) {
      const x = good.slice();
      x[at] = v;
      await expectReject(model.encodeImage(x, 2), /NaN or Inf/);
    }
  const edge = good.slice();
  edge[0] = 3.4028234663852886e38;
  edge[1] = -3.4028234663852886e38;
  edge[2] = -0;
  edge[n - 1] = asFloat(1); // the smallest subnormal
  const f = await model.encodeImage(edge, 2);
  assert.is(f.length, 2 * model.embedDim);
  await stillWorks();
});

test('labels outside [0, 1] (a raw CheXpert -1, a 5) are refused naming labels; soft labels train', async () => {
  // Before: trained silently towards a BCE target of -1 or 5.
  const c = await Classifier.create({ inputDim: 4, device: 'cpu', seed: 1 });
  try {
    const x = Float32Array.of(1, 2, 3, 4);
    for (const [labels, got, at] of [
      [Float32Array.of(0, 1, -1, 0, 1), '-1', 2],
      [Float32Array.of(5, 0, 0, 0, 0), '5', 0],
      [Float32Array.of(0, 0, 0, 0, 1.5), '1.5', 4],
      [Float32Array.of(0, -0.25, 0, 0, 0), '-0.25', 1],
    ] as const) {
      const e = await expectReject(c.trainStep(x, 1, labels), /labels must be in \[0, 1\]/);
      assert.instance(e, NativeError);
      assert.is((e as NativeError).code, 'ERR_INVALID_ARG');
      assert.is(
        e.message,
        `Classifier.trainStep: labels must be in [0, 1] (0/1, or soft labels between), got ${got} at index ${at}`,
      );
    }
    assert.is(c.info.step, 0, 'a refused step moved the step count');
    const soft = await c.trainStep(x, 1, Float32Array.of(0, 0.3, 1, 0.5, 0.999));
    assert.ok(Number.isFinite(soft.loss) && soft.loss > 0);
    assert.is(c.info.step, 1);
  } finally {
    c.dispose();
  }
});

test('Classifier.create: numLabels and inputDim beyond int32 or not integers are refused, in TS and in the addon', async () => {
  // Before: 1e300 was cast from double to int64 in js_classifier.cc (undefined behaviour), giving
  // "IntArrayRef contains an int that cannot be represented as a SymInt" or "needs inputDim > 0".
  for (const [o, re] of [
    [
      { inputDim: 4, numLabels: 1e300 },
      /^Classifier\.create option 'numLabels': numLabels must be an integer from 1 to 2147483647, got 1e\+300$/,
    ],
    [
      { inputDim: 4, numLabels: 2 ** 31 },
      /numLabels must be an integer from 1 to 2147483647, got 2147483648/,
    ],
    [
      { inputDim: 1e300 },
      /^inputDim \(required without modelDir\) must be an integer from 1 to 2147483647, got 1e\+300$/,
    ],
    [
      { modelDir: MODEL_DIR, inputDim: 1e300 },
      /^inputDim must be an integer from 1 to 2147483647, got 1e\+300$/,
    ],
    [{ inputDim: 4.5 }, /must be an integer from 1 to 2147483647, got 4\.5/],
  ] as const) {
    const e = await expectReject(() => Classifier.create(o), re);
    assert.instance(e, RangeError);
  }
  // the addon reads them strictly, whoever calls it
  const raw = loadNative().Classifier;
  const passed = RAW_HEAD_OPTIONS;
  for (const [key, value, range] of [
    ['numLabels', 1e300, '[1, 2147483647]'],
    ['numLabels', Number.NaN, '[1, 2147483647]'],
    ['numLabels', 0, '[1, 2147483647]'],
    ['inputDim', 1e300, '[0, 2147483647]'],
    ['inputDim', -1, '[0, 2147483647]'],
    ['inputDim', 2.5, '[0, 2147483647]'],
    ['imageSize', 1e300, '[0, 2147483647]'],
    ['seed', 2 ** 60, '[0, 9007199254740991]'],
  ] as const) {
    assert.throws(
      () => raw.create({ ...passed, [key]: value } as never),
      (e: Error) =>
        e instanceof RangeError &&
        (e as NativeError).code === 'ERR_INVALID_ARG' &&
        e.message === `${key} must be an integer in ${range}`,
      `${key}: ${value}`,
    );
  }
  const ok = await raw.create({ ...passed, numLabels: 3 } as never);
  assert.is(ok.info().numLabels, 3);
  ok.dispose();
});

test('cuda requested without a GPU', async () => {
  if (diagnostics().cuda.available) return;
  await expectReject(ClipModel.load(MODEL_DIR, { device: 'cuda' }), /CUDA is not available/);
  await expectReject(Classifier.create({ inputDim: 4, device: 'cuda' }), /CUDA is not available/);
  await expectReject(() => ClipModel.load(MODEL_DIR, { device: 'tpu' as 'cpu' }), /device must be/);
  await stillWorks();
});

test('bad options are named', async () => {
  await expectReject(
    () => Classifier.create({ inputDim: 4, lrhead: 1 } as never),
    /unknown Classifier\.create option 'lrhead'/,
  );
  await expectReject(() => Classifier.create({}), /inputDim/);
  await expectReject(() => Classifier.create({ inputDim: 4, lrHead: -1 }), /lrHead/);
});

test.after(() => {
  model?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});
test.run();
