/** Sharding an epoch's order across ranks: the union of every step is the single-process batch. */

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { epochSeed, shuffled } from '../../ts/common/random.js';
import { globalBatch, rankBatch, shardOf, stepsPerEpoch } from '../../ts/experiment/sampler.js';

test('every step: the ranks’ rows, in rank order, are exactly the batch one process takes at b × world', () => {
  for (const [rows, b, world] of [
    [9, 2, 2],
    [100, 8, 3],
    [7, 4, 4],
    [64, 16, 4],
    [5, 1, 8],
  ] as const) {
    const order = shuffled(
      Array.from({ length: rows }, (_, i) => i),
      epochSeed(3, 1),
    );
    const steps = stepsPerEpoch(rows, b, world);
    assert.is(steps, Math.ceil(rows / (b * world)));
    const seen: number[] = [];
    for (let s = 0; s < steps; s++) {
      const parts = Array.from({ length: world }, (_, r) => rankBatch(order, s, b, r, world));
      assert.equal(
        parts.flat(),
        order.slice(s * b * world, (s + 1) * b * world),
        `${rows}/${b}/${world} step ${s}`,
      );
      assert.equal(parts.flat(), globalBatch(order, s, b, world));
      for (const p of parts) assert.ok(p.length <= b);
      // near-equal parts: sizes differ by at most one row
      const sizes = parts.map((p) => p.length);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
      seen.push(...parts.flat());
    }
    assert.equal(seen, order, 'the epoch is every row once, in order');
  }
  // a short last batch leaves some ranks without rows (they take an idle step)
  assert.equal(shardOf([42], 0, 2), []);
  assert.equal(shardOf([42], 1, 2), [42]);
});

test.run();
