/** BatchQueue: calls that arrive while the model is busy share its next batch; a bad call fails alone. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BatchQueue } from '../../ts/service/batch-queue.js';

/** A model that records its batches and answers each item with item × 10 after `release()`. */
function gatedModel() {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  const run = async (items: number[]) => {
    batches.push(items);
    await new Promise<void>((r) => gates.push(r));
    if (items.includes(-1)) throw new Error('item -1 is bad');
    return items.map((i) => i * 10);
  };
  const release = async () => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { batches, run, release };
}

test('a lone call runs at once; calls that arrive meanwhile share the next batch, at most maxBatch', async () => {
  const m = gatedModel();
  const q = new BatchQueue(m.run, 3);
  const first = q.run(1);
  await new Promise((r) => setImmediate(r));
  assert.equal(m.batches, [[1]], 'an idle model takes the first call without waiting for others');
  const rest = [2, 3, 4, 5, 6].map((i) => q.run(i));
  assert.is(q.pending, 6);
  await m.release();
  assert.is(q.pending, 5, 'a running batch of 3 and 2 waiting');
  await m.release();
  await m.release();
  assert.equal(await Promise.all([first, ...rest]), [10, 20, 30, 40, 50, 60]);
  assert.equal(m.batches, [[1], [2, 3, 4], [5, 6]]);
  assert.equal(q.stats, { batches: 3, calls: 6, largest: 3, rerun: 0 });
  assert.is(q.pending, 0);
});

test('a batch that fails is answered call by call: only the bad call fails', async () => {
  const m = gatedModel();
  const q = new BatchQueue(m.run, 8);
  const first = q.run(1);
  const batch = [2, -1, 3].map((i) => q.run(i));
  const settled = Promise.allSettled([first, ...batch]);
  for (let k = 0; k < 3; k++) await m.release(); // [1], [2,-1,3] fails, then [2]
  assert.is(q.pending, 2, 'the rerun answered 2; -1 and 3 are still on the model');
  for (let k = 0; k < 2; k++) await m.release(); // [-1], [3]
  const out = await settled;
  assert.equal(
    out.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    [10, 20, 'item -1 is bad', 30],
  );
  assert.equal(m.batches, [[1], [2, -1, 3], [2], [-1], [3]]);
  assert.equal(q.stats, { batches: 2, calls: 4, largest: 3, rerun: 3 });
});

test('a model that answers the wrong number of calls is an error, not a shifted answer', async () => {
  const q = new BatchQueue(async (items: number[]) => items.slice(1), 4);
  await q.run(1).then(
    () => assert.unreachable('a batch of 1 with no answer resolved'),
    (e: Error) => assert.match(e.message, /a batch of 1 calls gave 0 answers/),
  );
  assert.throws(() => new BatchQueue(async (x: number[]) => x, 0), /maxBatch must be a positive integer/);
});

test.run();
