/**
 * A training that diverges stops with a DataError `non-finite-loss` naming the cell, epoch and step,
 * before the epoch is saved: no best.ckpt of NaN weights, no metrics on NaN outputs. The real addon
 * (a raw head-only classifier: the TS options refuse lrHead 1e308) and the pure-JS fake for the grid.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { NUM_LABELS } from '../../ts/common/labels.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import type { Batch } from '../../ts/experiment/backend.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { LOSS_READ_EVERY, predictAll, trainWithCheckpoints } from '../../ts/experiment/train.js';
import type { ClassifierLike } from '../../ts/model/backend.js';
import { Classifier } from '../../ts/model/classifier.js';
import { loadNative } from '../../ts/native.js';
import { RAW_HEAD_OPTIONS } from '../native/helpers.js';
import { fakeBackend } from './fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-nonfinite-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const DIM = RAW_HEAD_OPTIONS.inputDim;
const K = NUM_LABELS;

/** Row i: features sin(i·d), labels alternating; any rows, any batch. */
const source = async (idx: number[]): Promise<Batch> => ({
  x: Float32Array.from({ length: idx.length * DIM }, (_, j) => Math.sin(idx[Math.floor(j / DIM)]! + j)),
  n: idx.length,
  labels: Float32Array.from({ length: idx.length * K }, (_, j) => (idx[Math.floor(j / K)]! + j) % 2),
  labelMask: new Float32Array(idx.length * K).fill(1),
});

/** A Classifier over the raw addon's, made with a learning rate the TS options refuse. */
async function rawClassifier(lrHead: number): Promise<Classifier> {
  const raw = await loadNative().Classifier.create({ ...RAW_HEAD_OPTIONS, lrHead });
  const Ctor = Classifier as unknown as new (...a: unknown[]) => Classifier;
  return new Ctor(raw, {}, null);
}

async function caught(p: Promise<unknown>): Promise<DataError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DataError) return e;
    throw e;
  }
  throw new Error('expected a DataError');
}

const rows = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

test('lrHead 1e308 (real addon): stops at the first NaN loss read, nothing of the epoch saved', async () => {
  const clf = await rawClassifier(1e308);
  const dir = join(tmp, 'huge-lr');
  try {
    // 30 steps of 4: the losses are read at step 20 (and 30); step 1's loss is taken before its update
    const e = await caught(
      trainWithCheckpoints(clf, {
        dir,
        name: 'cell lp-original-s0',
        epochs: 2,
        batchSize: 4,
        seed: 0,
        trainIdx: rows(120),
        valIdx: rows(20, 120),
        source,
        selection: 'macroAUROC',
      }),
    );
    assert.is(e.reason, 'non-finite-loss');
    assert.match(e.message, /^cell lp-original-s0, epoch 1, step 2: the training loss is NaN/);
    assert.match(e.message, /lower the learning rate/);
    assert.ok(LOSS_READ_EVERY > 2, 'read later than the step that failed: no wait of its own');
    assert.equal(
      existsSync(dir) ? readdirSync(dir) : [],
      [],
      'no best.ckpt, no epoch checkpoint, no state.json',
    );
  } finally {
    clf.dispose();
  }
});

test('weights made NaN by the epoch last step: validation stops it before best.ckpt is written', async () => {
  const clf = await rawClassifier(1e308);
  const dir = join(tmp, 'one-step');
  try {
    // one step per epoch: its loss (before the update) is finite, the weights after it are not
    const e = await caught(
      trainWithCheckpoints(clf, {
        dir,
        epochs: 1,
        batchSize: 8,
        seed: 0,
        trainIdx: rows(8),
        valIdx: rows(12, 8),
        source,
        selection: 'loss',
      }),
    );
    assert.is(e.reason, 'non-finite-loss');
    assert.match(
      e.message,
      new RegExp(`^${dir}, epoch 1, validation: the model's output for row 8 \\(\\w+\\) is NaN`),
    );
    assert.not.ok(existsSync(join(dir, 'best.ckpt')));
    assert.not.ok(existsSync(join(dir, 'state.json')));
  } finally {
    clf.dispose();
  }
});

test('a NaN loss in epoch 2: the best.ckpt and state of epoch 1 stay as they were', async () => {
  const backend = fakeBackend();
  const clf = (await backend.createClassifier({ inputDim: DIM, lrHead: 0.01, seed: 0 })) as ClassifierLike;
  const step = clf.trainStep.bind(clf);
  let steps = 0;
  clf.trainStep = async (...a) => {
    const r = await step(...a);
    return ++steps === 13 ? { loss: Number.POSITIVE_INFINITY } : r;
  };
  const dir = join(tmp, 'epoch-two');
  const o = {
    dir,
    epochs: 3,
    batchSize: 4,
    seed: 0,
    trainIdx: rows(40),
    valIdx: rows(12, 40),
    source,
    selection: 'loss' as const,
  };
  const e = await caught(trainWithCheckpoints(clf, o));
  assert.is(e.reason, 'non-finite-loss');
  assert.match(e.message, /epoch 2, step 3: the training loss is Infinity/);
  const best = readFileSync(join(dir, 'best.ckpt'), 'utf8');
  const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
  assert.is(state.epochsDone, 1);
  assert.is(state.lastCheckpoint, 'epoch-1.ckpt');
  assert.not.ok(existsSync(join(dir, 'epoch-2.ckpt')));
  assert.ok(JSON.parse(best).w.every(Number.isFinite));
});

test('predictAll: a NaN output is an error, not an unreadable row', async () => {
  const nan = async (_x: unknown, n: number) => new Float32Array(n * K).fill(Number.NaN);
  const e = await caught(predictAll(nan, source, rows(6), { batchSize: 4 }));
  assert.is(e.reason, 'non-finite-output');
  assert.match(e.message, /output for row 0 \(\w+\) is NaN/);
});

test('grid: the diverging cell stops the run with its name; the cells before it keep their results', async () => {
  const base = fakeBackend();
  const backend = {
    ...base,
    createClassifier: async (o: Parameters<typeof base.createClassifier>[0]) => {
      const c = await base.createClassifier(o);
      if (!o.modelDir) return c;
      // fine-tuning diverges at its 2nd step
      const step = c.trainStep.bind(c);
      let n = 0;
      c.trainStep = async (...a) => {
        const r = await step(...a);
        return ++n >= 2 ? { loss: Number.NaN } : r;
      };
      return c;
    },
  };
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'diverge',
    data: { cache: 'unused' },
    seeds: [0],
    linearProbe: { epochs: 2, batchSize: 16, lr: 0.05, maxUnreadableShare: 0.05 },
    finetune: { epochs: 2, batchSize: 16, lrHead: 0.02, maxUnreadableShare: 0.05 },
    metrics: { bootstrap: 0 },
  });
  const e = await caught(runExperiment({ config, backend }));
  assert.is(e.reason, 'non-finite-loss');
  assert.match(e.message, /^cell jft-original-s0, epoch 1, step 2: the training loss is NaN/);
  const [name] = readdirSync(join(tmp, 'runs'));
  const cells = join(tmp, 'runs', name!, 'cells');
  assert.ok(existsSync(join(cells, 'lp-original-s0', 'result.json')));
  assert.ok(existsSync(join(cells, 'lp-masked-s0', 'result.json')));
  assert.not.ok(existsSync(join(cells, 'jft-original-s0', 'best.ckpt')));
  assert.not.ok(existsSync(join(cells, 'jft-original-s0', 'result.json')));
});

test.run();
