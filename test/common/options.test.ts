/**
 * The one validation vocabulary (ts/common/options.ts): option objects and lone arguments fail with a
 * TypeError (wrong type, unknown key) or RangeError (out of range) that names them, never a ZodError;
 * and the defaults the experiment config shares with the model classes come from ts/model/defaults.ts.
 */

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { z } from 'zod';
import { configFromArgv } from '../../ts/cli/config-merge.js';
import { ConfigError } from '../../ts/common/errors.js';
import {
  checkArg,
  deviceName,
  flag,
  nonNegativeNumber,
  or,
  parseOptions,
  positiveInt,
  typedArray,
} from '../../ts/common/options.js';
import { parseConfig } from '../../ts/experiment/config.js';
import {
  CLASSIFIER_DEFAULTS,
  DEFAULT_DEVICE,
  MAX_LEARNING_RATE,
  SEGMENTER_DEFAULTS,
} from '../../ts/model/defaults.js';
import { ClassifierCreateSchema, SegmenterLoadSchema } from '../../ts/model/options.js';

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    assert.is.not((e as Error).name, 'ZodError');
    return e as Error;
  }
  throw new Error('did not throw');
}

const Schema = z
  .object({
    steps: or(positiveInt, 32),
    sigma: or(nonNegativeNumber, 0.15),
    mode: z.enum(['a', 'b']).optional(),
    label: z.string().optional(),
  })
  .strict();

test('option objects: defaults filled in, problems named with the entry point and the option', () => {
  assert.equal(parseOptions(Schema, {}, 'attribute'), { steps: 32, sigma: 0.15 });
  // null reads as left out, as `??` did
  assert.equal(parseOptions(Schema, { steps: null }, 'attribute'), { steps: 32, sigma: 0.15 });
  let e = thrown(() => parseOptions(Schema, { stepz: 3 }, 'attribute'));
  assert.instance(e, TypeError);
  assert.is(e.message, "unknown attribute option 'stepz' (known: steps, sigma, mode, label)");
  e = thrown(() => parseOptions(Schema, { steps: 0 }, 'attribute'));
  assert.instance(e, RangeError);
  assert.is(e.message, "attribute option 'steps': steps must be a positive integer, got 0");
  // a wrong type for a piece stays a RangeError, as the hand checks had it
  e = thrown(() => parseOptions(Schema, { sigma: '1' }, 'attribute'));
  assert.instance(e, RangeError);
  assert.match(e.message, /sigma must be a finite number >= 0, got 1/);
  // zod's own checks: a value outside an enum is a RangeError, a wrong type a TypeError
  e = thrown(() => parseOptions(Schema, { mode: 'c' }, 'attribute'));
  assert.instance(e, RangeError);
  assert.match(e.message, /^attribute option 'mode': /);
  e = thrown(() => parseOptions(Schema, { label: 3 }, 'attribute'));
  assert.instance(e, TypeError);
  assert.match(e.message, /^attribute option 'label': /);
});

test('lone arguments: `<name> must …, got …`', () => {
  assert.is(checkArg(positiveInt, 3, 'n'), 3);
  let e = thrown(() => checkArg(positiveInt, 1.5, 'n'));
  assert.instance(e, RangeError);
  assert.is(e.message, 'n must be a positive integer, got 1.5');
  const f32 = typedArray(Float32Array, 6, '[2,3]');
  e = thrown(() => checkArg(f32, [1, 2], 'x'));
  assert.instance(e, TypeError);
  assert.is(e.message, 'x must be a Float32Array [2,3], got Array');
  e = thrown(() => checkArg(f32, new Float32Array(5), 'x'));
  assert.instance(e, RangeError);
  assert.is(e.message, 'x must hold 6 values ([2,3]), got 5');
  assert.is(typedArray(Float32Array, 6, '[2,3]'), f32, 'one schema per shape, built once');
  e = thrown(() => checkArg(deviceName, 'tpu', 'device'));
  assert.is(e.message, "device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got tpu");
});

test('a flag is a boolean or left out; anything else is a TypeError (it read as false before)', () => {
  const Flags = z.object({ on: flag }).strict();
  assert.equal(parseOptions(Flags, {}, 'save'), { on: false });
  assert.equal(parseOptions(Flags, { on: null }, 'save'), { on: false });
  assert.equal(parseOptions(Flags, { on: true }, 'save'), { on: true });
  assert.equal(parseOptions(Flags, { on: false }, 'save'), { on: false });
  for (const [v, got] of [
    ['yes', "'yes'"],
    ['true', "'true'"],
    [1, 'number'],
    [{}, 'Object'],
  ] as const) {
    const e = thrown(() => parseOptions(Flags, { on: v }, 'save'));
    assert.instance(e, TypeError);
    assert.is(e.message, `save option 'on': on must be a boolean, got ${got}`);
  }
});

test('the model options take their defaults from model/defaults.ts, as does the experiment config', () => {
  const o = parseOptions(ClassifierCreateSchema, { inputDim: 4 }, 'Classifier.create');
  assert.equal(o, { modelDir: null, inputDim: 4, ...CLASSIFIER_DEFAULTS });
  const c = parseConfig({ data: { cache: 'cache' }, segmenter: { dir: 'seg', weights: 'best.pt' } });
  assert.is(c.finetune.lrEncoder, CLASSIFIER_DEFAULTS.lrEncoder);
  assert.is(c.finetune.lrHead, CLASSIFIER_DEFAULTS.lrHead);
  assert.is(c.model.device, DEFAULT_DEVICE);
  assert.is(c.segmenter?.threshold, SEGMENTER_DEFAULTS.threshold);
});

test('learning rates: finite, 0 to MAX_LEARNING_RATE, at every entry point', () => {
  const bad = [1e308, Number.NaN, Number.POSITIVE_INFINITY, -1e-3, 1.5];
  for (const v of bad) {
    for (const k of ['lrHead', 'lrEncoder'] as const) {
      const e = thrown(() =>
        parseOptions(ClassifierCreateSchema, { inputDim: 4, [k]: v }, 'Classifier.create'),
      );
      assert.instance(e, RangeError);
      assert.is(
        e.message,
        `Classifier.create option '${k}': ${k} must be a finite number from 0 to ${MAX_LEARNING_RATE}, got ${v}`,
      );
    }
    const s = thrown(() => parseOptions(SegmenterLoadSchema, { lr: v }, 'Segmenter.load'));
    assert.instance(s, RangeError);
    assert.match(s.message, /^Segmenter\.load option 'lr': lr must be a finite number from 0 to 1/);
    // the run config (file and CLI flags alike) refuses the same values, naming the field
    for (const over of [
      { linearProbe: { lr: v } },
      { finetune: { lrHead: v } },
      { finetune: { lrEncoder: v } },
    ]) {
      const c = thrown(() => parseConfig({ data: { cache: 'c' }, ...over }));
      assert.instance(c, ConfigError);
      const [setup, block] = Object.entries(over)[0]!;
      assert.match(
        c.message,
        new RegExp(`${setup}\\.${Object.keys(block)[0]}: must be a finite number from 0 to 1`),
      );
    }
  }
  const flag = thrown(() => configFromArgv({ cache: 'c', lrHead: 1e308 }));
  assert.instance(flag, ConfigError);
  assert.match(flag.message, /finetune\.lrHead: must be a finite number from 0 to 1, got 1e\+308/);
  // the edges are taken
  for (const v of [0, 1e-6, MAX_LEARNING_RATE]) {
    assert.is(parseOptions(ClassifierCreateSchema, { inputDim: 4, lrHead: v }, 'x').lrHead, v);
    assert.is(parseConfig({ data: { cache: 'c' }, finetune: { lrHead: v } }).finetune.lrHead, v);
  }
});

test.run();
