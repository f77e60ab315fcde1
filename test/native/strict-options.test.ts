/**
 * The addon reads its option objects strictly: every key the TypeScript classes pass is required, and
 * a missing one is a TypeError naming it (no default is guessed in C++). The classes still take
 * omitted options, filled in from ts/model/defaults.ts.
 */

import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { CLASSIFIER_DEFAULTS, SEGMENTER_DEFAULTS } from '../../ts/model/defaults.js';
import { Segmenter } from '../../ts/model/segmenter.js';
import { loadNative } from '../../ts/native.js';
import { MODEL_DIR, ROOT, requireModel } from './helpers.js';

const SEG_DIR = process.env['CXRMASK_TEST_SEGMENTER'] ?? join(ROOT, 'models', 'seg-tiny');

/**
 * Runs `f` with the method `name` of `holder` wrapped so that the option object of each call (its
 * argument `arg`) is recorded. The addon's methods are read-only: the wrapper is an own property of `holder` (for an
 * instance) or `holder` is swapped on `owner` for an object with the wrapper (a class's static).
 */
async function recording<T>(
  target: {
    holder: object;
    name: string;
    arg: number;
    owner?: { object: Record<string, unknown>; key: string };
  },
  f: () => Promise<T>,
): Promise<{ result: T; seen: Record<string, unknown>[] }> {
  const { holder, name, arg, owner } = target;
  const original = (holder as Record<string, (...a: unknown[]) => unknown>)[name]!;
  const seen: Record<string, unknown>[] = [];
  const wrapper = (...a: unknown[]) => {
    seen.push({ ...(a[arg] as object) });
    return original.apply(holder, a);
  };
  if (owner) owner.object[owner.key] = { [name]: wrapper };
  else Object.defineProperty(holder, name, { value: wrapper, configurable: true, writable: true });
  try {
    return { result: await f(), seen };
  } finally {
    if (owner) owner.object[owner.key] = holder;
    else delete (holder as Record<string, unknown>)[name];
  }
}

/** The static `create` of the addon's class `key`, for recording. */
const staticCreate = (key: string) => {
  const binding = loadNative() as unknown as Record<string, object>;
  return { holder: binding[key]!, name: 'create', arg: 0, owner: { object: binding, key } };
};

/** `attribute(x, shape, pixels, options)` of a model class's live native object, for recording. */
const nativeAttribute = (model: object) => ({
  holder: (model as { live(): object }).live(),
  name: 'attribute',
  arg: 3,
});

/** Each key of `full` left out makes `call` throw a TypeError that names it. */
function eachKeyRequired(full: Record<string, unknown>, call: (o: Record<string, unknown>) => unknown) {
  for (const key of Object.keys(full)) {
    const { [key]: _, ...rest } = full;
    assert.throws(
      () => call(rest),
      (e: Error) => e instanceof TypeError && e.message === `option '${key}' is missing`,
      `without '${key}'`,
    );
    // undefined is as missing as an absent key
    assert.throws(
      () => call({ ...rest, [key]: undefined }),
      (e: Error) => e.message.includes(`'${key}'`),
    );
  }
}

test('Classifier: the TS class passes every key, defaults from model/defaults.ts; the addon requires each', async () => {
  requireModel();
  const { result: clf, seen } = await recording(staticCreate('Classifier'), () =>
    Classifier.create({ inputDim: 4 }),
  );
  try {
    assert.is(clf.numLabels, CLASSIFIER_DEFAULTS.numLabels);
    assert.is(seen.length, 1);
    const passed = seen[0]!;
    assert.equal(passed, {
      modelPath: null,
      inputDim: 4,
      imageSize: 0,
      numLabels: CLASSIFIER_DEFAULTS.numLabels,
      device: CLASSIFIER_DEFAULTS.device,
      lrEncoder: CLASSIFIER_DEFAULTS.lrEncoder,
      lrHead: CLASSIFIER_DEFAULTS.lrHead,
      weightDecay: CLASSIFIER_DEFAULTS.weightDecay,
      freezeEncoder: CLASSIFIER_DEFAULTS.freezeEncoder,
      gradClip: CLASSIFIER_DEFAULTS.gradClip,
      bf16: CLASSIFIER_DEFAULTS.bf16,
      seed: CLASSIFIER_DEFAULTS.seed,
    });
    const raw = loadNative().Classifier;
    eachKeyRequired({ ...passed, device: 'cpu' }, (o) => raw.create(o as never));
    // a wrong type is named too, and null stands for "none" only where the option allows it
    assert.throws(() => raw.create({ ...passed, lrHead: '1' } as never), /lrHead must be a number/);
    assert.throws(() => raw.create({ ...passed, bf16: 1 } as never), /bf16 must be a boolean/);
    assert.throws(() => raw.create({ ...passed, numLabels: null } as never), /numLabels must be a number/);
  } finally {
    await clf.dispose();
  }
});

test('attribution options: every key is required by the addon', async () => {
  requireModel();
  const clf = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu' });
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const s = clip.meta.imageSize;
    const x = new Float32Array(3 * s * s);
    const seenClf = await recording(nativeAttribute(clf), () => clf.attribute(x, 1, 0));
    const opts = seenClf.seen[0]!;
    assert.equal(Object.keys(opts).sort(), [
      'baseline',
      'batch',
      'bf16',
      'label',
      'method',
      'samples',
      'seed',
      'sigma',
      'signed',
      'steps',
    ]);
    const rawClf = (clf as unknown as { live(): { attribute(...a: unknown[]): unknown } }).live();
    eachKeyRequired(opts, (o) => rawClf.attribute(x, [1, 3, s, s], undefined, o));

    const text = new Float32Array(clip.embedDim).fill(0.1);
    const seenClip = await recording(nativeAttribute(clip), () => clip.attribute(x, 1, text));
    const clipOpts = seenClip.seen[0]!;
    assert.is(clipOpts['linearBias'], null);
    assert.ok('text' in clipOpts && 'textRows' in clipOpts);
    const rawClip = (clip as unknown as { live(): { attribute(...a: unknown[]): unknown } }).live();
    eachKeyRequired({ ...clipOpts, text }, (o) => rawClip.attribute(x, [1, 3, s, s], undefined, o));
  } finally {
    await clf.dispose();
    await clip.dispose();
  }
});

test('Segmenter: defaults from model/defaults.ts; the addon requires each key', async () => {
  const { result: seg, seen } = await recording(staticCreate('Segmenter'), () => Segmenter.load(SEG_DIR));
  try {
    assert.is(seg.threshold, SEGMENTER_DEFAULTS.threshold);
    const passed = seen[0]!;
    assert.equal(
      { ...passed, modelPath: undefined },
      {
        modelPath: undefined,
        device: SEGMENTER_DEFAULTS.device,
        lr: SEGMENTER_DEFAULTS.lr,
        weightDecay: SEGMENTER_DEFAULTS.weightDecay,
        gradClip: SEGMENTER_DEFAULTS.gradClip,
        bf16: SEGMENTER_DEFAULTS.bf16,
      },
    );
    const raw = loadNative().Segmenter;
    eachKeyRequired({ ...passed, device: 'cpu' }, (o) => raw.create(o as never));
  } finally {
    await seg.dispose();
  }
});

test('ProcessGroup: the addon requires each key (refused before any rendezvous)', () => {
  const raw = loadNative().ProcessGroup;
  const full = {
    rank: 0,
    worldSize: 1,
    masterAddr: '127.0.0.1',
    masterPort: 29500,
    backend: 'gloo',
    timeoutMs: 1000,
    device: 'cpu',
  };
  eachKeyRequired(full, (o) => raw.create(o as never));
});

test('positional flags and the pixel spec: readLoss and original/masked must be booleans, no default', async () => {
  requireModel();
  const native = loadNative();
  const clf = await Classifier.create({ inputDim: 4, device: 'cpu', seed: 1 });
  try {
    const raw = (clf as unknown as { live(): { trainStep(...a: unknown[]): Promise<unknown> } }).live();
    const x = Float32Array.of(1, 2, 3, 4);
    const y = new Float32Array(5);
    assert.throws(() => raw.trainStep(x, [1, 4], y, null, undefined), /readLoss must be a boolean/);
    assert.throws(() => raw.trainStep(x, [1, 4], y, null, undefined, 1), /readLoss must be a boolean/);
    assert.ok(((await raw.trainStep(x, [1, 4], y, null, undefined, true)) as { loss: number }).loss > 0);
  } finally {
    await clf.dispose();
  }
  const S = 4;
  const records = new Uint8Array(2 * S * S);
  const spec = {
    mean: [0.5, 0.5, 0.5],
    std: [0.25, 0.25, 0.25],
    paint: new Float32Array(24),
    original: true,
    masked: false,
  };
  assert.ok((await native.recordsToImages(records, [1, 2, S, S], spec, 'cpu')) instanceof Float32Array);
  for (const key of ['original', 'masked'] as const) {
    const { [key]: _dropped, ...rest } = spec;
    assert.throws(
      () => native.recordsToImages(records, [1, 2, S, S], rest as typeof spec, 'cpu'),
      (e: Error) => e instanceof TypeError && e.message.includes(`option '${key}' is missing`),
    );
  }
});

test.run();
