/**
 * Unreadable training images are counted per epoch and stop training past the allowed share;
 * one bad image no longer costs its whole batch. Pure-JS fake classifier, no addon.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import type { Batch } from '../../ts/experiment/backend.js';
import { type TrainOptions, trainWithCheckpoints } from '../../ts/experiment/train.js';
import { fakeBackend, fakeCache } from './fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-unreadable-'));
const N = 200;
let run = 0;

async function train(bad: number[], over: Partial<TrainOptions> = {}) {
  const cache = fakeCache({ n: N + 40, bad });
  const train = Array.from({ length: N }, (_, i) => i);
  const val = Array.from({ length: 40 }, (_, i) => N + i);
  const clf = await fakeBackend().createClassifier({ modelDir: 'fake', lrHead: 0.02, seed: 0 });
  const trained: number[] = [];
  const step = clf.trainStep.bind(clf);
  clf.trainStep = async (x, n, labels, mask) => {
    trained.push(n);
    return step(x, n, labels, mask);
  };
  const st = await trainWithCheckpoints(clf, {
    dir: join(tmp, `cell-${run++}`),
    epochs: 2,
    batchSize: 20,
    seed: 0,
    trainIdx: train,
    valIdx: val,
    source: async (idx) => (await cache.batch(idx, 'original')) as Batch,
    selection: 'loss',
    ...over,
  });
  return { st, trained };
}

test('one unreadable image: its batch still trains on the other 19; the epoch records it', async () => {
  const { st, trained } = await train([7]);
  assert.equal(st.history[0]!.unreadable, { images: 1, batches: 1 });
  assert.equal(st.history[1]!.unreadable, { images: 1, batches: 1 });
  assert.is(
    trained.reduce((a, b) => a + b, 0),
    2 * (N - 1),
  );
});

test('more than 1% of the training split unreadable: training stops with a DataError saying so', async () => {
  try {
    await train([3, 50, 90, 120, 160]);
    assert.unreachable('5 of 200 unreadable must stop training');
  } catch (e) {
    assert.instance(e, DataError);
    assert.match(
      (e as Error).message,
      /epoch 1: 3 of 200 training images could not be read, more than the allowed 1\.00% \(2;/,
    );
    assert.match((e as Error).message, /First: row \d+: cannot read image \d+/);
  }
});

test('the share is configurable', async () => {
  const { st } = await train([3, 50, 90, 120, 160], { maxUnreadableShare: 0.05 });
  const u = st.history[0]!.unreadable!;
  assert.is(u.images, 5);
  assert.ok(u.batches >= 1 && u.batches <= 5, String(u.batches));
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
