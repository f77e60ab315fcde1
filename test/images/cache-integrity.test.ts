/**
 * A damaged cache is an error naming the shard, never "bad images": truncated and
 * bit-flipped shards are refused when the cache is opened and rebuilt (not reused) by a rebuild;
 * open stays cheap because verified shards are not re-hashed.
 */

import { closeSync, openSync, readFileSync, readSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import type { IndexEntry } from '../../ts/data/mimic.js';
import { openCache } from '../../ts/images/cache.js';
import { buildCache } from '../../ts/images/cache-build.js';

import { type ShardInfo, verifyShards } from '../../ts/images/cache-verify.js';
import { synthTree, tempDir } from '../data/helpers.js';

async function build(out: string, entries?: IndexEntry[]) {
  const s = await synthTree();
  const all = entries ?? (await buildIndex({ root: s.mimicRoot })).entries.slice(0, 48);
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    all.map((e) => e.dicomId),
  );
  return {
    sum: await buildCache({ entries: all, root: s.mimicRoot, chexmask: rows, out, shardSize: 12 }),
    all,
  };
}

function refuses(dir: string, re: RegExp): void {
  try {
    openCache(dir);
    assert.unreachable('a damaged cache must not open');
  } catch (e) {
    assert.instance(e, DataError);
    assert.match((e as Error).message, re);
  }
}

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x10;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

test('truncated shard: open names the shard; a rebuild redoes only that shard', async () => {
  const out = tempDir();
  const { sum, all } = await build(out);
  assert.ok(sum.shardsBuilt >= 3);
  openCache(sum.dir).close();
  const shard = join(sum.dir, 'shard-00001.bin');
  truncateSync(shard, statSync(shard).size - 1000);
  refuses(sum.dir, /shard-00001\.bin: shard is \d+ bytes, expected \d+ .*rebuild it/);
  const again = (await build(out, all)).sum;
  assert.is(again.shardsBuilt, 1);
  assert.is(again.cached, sum.cached);
  openCache(sum.dir).close();
});

test('bit-flipped shard of the right size: open refuses it, a rebuild does not reuse it', async () => {
  const out = tempDir();
  const { sum, all } = await build(out);
  const shard = join(sum.dir, 'shard-00002.bin');
  const size = statSync(shard).size;
  flipByte(shard, Math.floor(size / 2));
  assert.is(statSync(shard).size, size);
  refuses(sum.dir, /shard-00002\.bin: content checksum mismatch/);
  const again = (await build(out, all)).sum;
  assert.is(again.shardsBuilt, 1, 'the flipped shard is rebuilt, the others reused');
  assert.is(again.shardsReused, sum.shardsBuilt - 1);
  openCache(sum.dir).close();
  // a manifest is never paired with another build's shard: swap two equal-size shards
  const a = join(sum.dir, 'shard-00000.bin');
  const b = join(sum.dir, 'shard-00001.bin');
  if (statSync(a).size === statSync(b).size) {
    const ba = readFileSync(a);
    const fd = openSync(a, 'w');
    writeSync(fd, readFileSync(b));
    closeSync(fd);
    const fb = openSync(b, 'w');
    writeSync(fb, ba);
    closeSync(fb);
    const swapped = (await build(out, all)).sum;
    assert.is(swapped.shardsBuilt, 2);
  }
});

test('edited entries.jsonl is refused', async () => {
  const { sum } = await build(tempDir());
  flipByte(join(sum.dir, 'entries.jsonl'), 20);
  refuses(sum.dir, /entries\.jsonl: content checksum mismatch/);
});

test('open re-hashes only shards changed since they were verified', async () => {
  const { sum } = await build(tempDir());
  const meta = JSON.parse(readFileSync(join(sum.dir, 'cache.json'), 'utf8')) as {
    shards: ShardInfo[];
    recordBytes: number;
  };
  // shards written in the last 2 s are not trusted yet (coarse file-system clocks): wait that out
  await new Promise((r) => setTimeout(r, 2100));
  verifyShards(sum.dir, meta.shards, meta.recordBytes);
  assert.is(verifyShards(sum.dir, meta.shards, meta.recordBytes).hashed, 0);
  flipByte(join(sum.dir, 'shard-00000.bin'), 5);
  try {
    verifyShards(sum.dir, meta.shards, meta.recordBytes);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /shard-00000\.bin: content checksum mismatch/);
  }
});

test('minDice and the label policy key the cache: a rebuild with other data settings gets its own folder', async () => {
  const out = tempDir();
  const { sum, all } = await build(out);
  const s = await synthTree();
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    all.map((e) => e.dicomId),
    { minDice: 0.9 },
  );
  const same = { entries: all, root: s.mimicRoot, chexmask: rows, out, shardSize: 12, minDice: 0.9 };
  const strict = await buildCache(same);
  const policy = { uncertain: 'ignore', blank: 'zeros' };
  const relabelled = await buildCache({ ...same, labelPolicy: policy });
  assert.equal(new Set([sum.key, strict.key, relabelled.key]).size, 3);
  assert.is(openCache(out, { data: { minDice: 0.9, labelPolicy: policy } }).key, relabelled.key);
  assert.is(openCache(sum.dir).entries.length, sum.cached, 'the first cache is untouched');
  // A keyed folder given directly must match the settings asked for (else a U-Zeros cache would be
  // trained on under a U-Ignore config).
  const zeros = { uncertain: 'zeros', blank: 'zeros' };
  try {
    openCache(relabelled.dir, { data: { minDice: 0.9, labelPolicy: zeros } });
    assert.unreachable('opened a cache built with another label policy');
  } catch (e) {
    assert.is((e as { reason?: string }).reason, 'cache-mismatch');
    assert.match(
      (e as Error).message,
      /label policy uncertain=ignore, blank=zeros \(cache\) vs uncertain=zeros/,
    );
  }
  assert.throws(
    () => openCache(relabelled.dir, { data: { minDice: 0.7, labelPolicy: policy } }),
    /minDice 0\.9 \(cache\) vs 0\.7/,
  );
  assert.is(openCache(relabelled.dir, { data: { minDice: 0.9, labelPolicy: policy } }).key, relabelled.key);
  // Only what is asked is compared: contour settings count when given, not when left out.
  assert.throws(
    () =>
      openCache(relabelled.dir, { data: { minDice: 0.9, labelPolicy: policy }, overlay: { thickness: 5 } }),
    /contour thickness \d+ \(cache\) vs 5/,
  );
  assert.is(openCache(strict.dir, { data: { minDice: 0.9, labelPolicy: null } }).key, strict.key);
});

test.run();
