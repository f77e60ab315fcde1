/**
 * The error classes of the package root, each from a call that throws it: argument errors synchronously,
 * native failures as rejected NativeErrors with a code and the caller's stack, bad data as DataError
 * naming the file, bad configs as ConfigError, a stopped run as InterruptedError. Imports only the root.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Classifier,
  ClipModel,
  ConfigError,
  DataError,
  diagnostics,
  InterruptedError,
  joinChexmask,
  loadConfig,
  NativeError,
  parseConfig,
  runExperiment,
} from '../../ts/index.js';
import { fakeBackend } from '../experiment/fake-backend.js';
import { MODEL_DIR } from '../native/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-public-errors-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('a file that is not TorchScript: a NativeError with a code and the caller in its stack', async () => {
  const dir = join(tmp, 'bad-model');
  mkdirSync(dir);
  copyFileSync(join(MODEL_DIR, 'model.json'), join(dir, 'model.json'));
  writeFileSync(join(dir, 'clip.pt'), 'not a zip archive');
  const e = await ClipModel.load(dir, { device: 'cpu' }).catch((err: unknown) => err);
  assert.instance(e, NativeError);
  assert.is((e as NativeError).code, 'ERR_NATIVE');
  assert.is((e as Error).name, 'NativeError');
  assert.match((e as Error).stack ?? '', /^NativeError: ClipModel\.load: /);
  assert.match((e as Error).stack ?? '', /errors\.test\.ts/);
});

test('argument errors are thrown synchronously, before anything is queued', async () => {
  const clf = await Classifier.create({ inputDim: 4, device: 'cpu' });
  try {
    assert.throws(() => clf.predict(new Float64Array(4) as unknown as Float32Array, 1), TypeError);
    assert.throws(() => clf.predict(new Float32Array(4), 0), RangeError);
    assert.throws(() => clf.predict(new Float32Array(3), 1), RangeError);
    const bad = { inputDim: 4, device: 'cpu', learningRate: 1 } as unknown as Parameters<
      typeof Classifier.create
    >[0];
    await Classifier.create(bad).then(
      () => assert.unreachable('an unknown option was accepted'),
      (err: unknown) => assert.match(String(err), /learningRate/),
    );
    // the model still works after the refusals
    assert.is((await clf.predict(new Float32Array(4), 1)).length, 5);
  } finally {
    await clf.dispose();
  }
});

test('cuda requested without a GPU: NativeError ERR_INVALID_ARG', async () => {
  if (diagnostics().cuda.available) return; // this machine has a GPU: nothing to refuse
  const e = await Classifier.create({ inputDim: 4, device: 'cuda' }).catch((err: unknown) => err);
  assert.instance(e, NativeError);
  assert.is((e as NativeError).code, 'ERR_INVALID_ARG');
});

test('bad data: a DataError naming the file', async () => {
  const csv = join(tmp, 'not-chexmask.csv');
  writeFileSync(csv, 'a,b\n1,2\n');
  const e = await joinChexmask(csv, ['x']).catch((err: unknown) => err);
  assert.instance(e, DataError);
  assert.is((e as DataError).where.file, csv);
  assert.ok((e as Error).message.startsWith(csv), (e as Error).message);
});

test('bad configs: a ConfigError naming the file or the field', () => {
  const missing = join(tmp, 'missing.json');
  assert.throws(
    () => loadConfig(missing),
    (e: unknown) => e instanceof ConfigError && e.message.includes(missing),
  );
  assert.throws(
    () => parseConfig({ data: { cache: 'c' }, linearProbe: { epochs: -1 } }),
    (e: unknown) => e instanceof ConfigError && /linearProbe\.epochs/.test(e.message),
  );
});

test('a config file saved with a UTF-8 byte-order mark (Windows editors) loads like one without', () => {
  const file = join(tmp, 'bom.json');
  writeFileSync(file, `\ufeff${JSON.stringify({ data: { cache: 'c', uncertain: 'zeros' }, seeds: [4] })}`);
  const config = loadConfig(file);
  assert.is(config.data.uncertain, 'zeros');
  assert.equal(config.seeds, [4]);
});

test('a run stopped by its signal rejects with InterruptedError', async () => {
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    data: { cache: 'unused' },
    seeds: [0],
    zeroshot: { enabled: false },
    linearProbe: { enabled: false },
    finetune: { epochs: 2, batchSize: 16 },
  });
  const signal = { stop: false };
  let steps = 0;
  const backend = fakeBackend({
    beforeTrainStep: () => {
      if (++steps === 2) signal.stop = true;
    },
  });
  const e = await runExperiment({ config, backend, signal }).catch((err: unknown) => err);
  assert.instance(e, InterruptedError);
  assert.is((e as Error).name, 'InterruptedError');
});

test.run();
