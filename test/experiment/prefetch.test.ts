/** prefetch: order kept, at most `depth` reads ahead of the consumer, a failed load is a value. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataWait, prefetch } from '../../ts/common/prefetch.js';

test('batches arrive in order, depth reads ahead, errors come back as values', async () => {
  let started = 0;
  let running = 0;
  let most = 0;
  const load = async (i: number) => {
    started++;
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
    if (i === 3) throw new Error('unreadable');
    return i * 10;
  };
  const got: (number | string)[] = [];
  const wait = new DataWait();
  for await (const item of prefetch(6, load, { depth: 2, wait })) {
    // While the consumer holds batch i, at most batches i+1 and i+2 have been started.
    assert.ok(started <= item.i + 3, `batch ${item.i}: ${started} loads started`);
    got.push(item.ok ? item.value : (item.error as Error).message);
    await new Promise((r) => setTimeout(r, 2));
  }
  assert.equal(got, [0, 10, 20, 'unreadable', 40, 50]);
  assert.ok(most <= 2, `${most} loads ran at once`);
  assert.ok(wait.seconds > 0);
});

test.run();
