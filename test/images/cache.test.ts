import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError, InterruptedError } from '../../ts/common/errors.js';
import { type ChexmaskRow, joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { REGIONS } from '../../ts/data/landmarks.js';
import type { Split } from '../../ts/data/mimic.js';
import { openCache } from '../../ts/images/cache.js';
import { buildCache, rebuildNotes } from '../../ts/images/cache-build.js';
import { STAMPS_FILE } from '../../ts/images/cache-verify.js';
import { preprocess } from '../../ts/images/preprocess.js';
import { CONTOUR_BITS, REGION_BITS, regionMasksOnGrid } from '../../ts/masks/overlay.js';
import { rejects, synthTree, tempDir } from '../data/helpers.js';

async function setup() {
  const s = await synthTree();
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    entries.map((e) => e.dicomId),
  );
  return { s, entries, rows };
}

test('cache gives the same tensors as the direct path (original and masked), in the native layout', async () => {
  const { s, entries, rows } = await setup();
  const out = tempDir();
  const sum = await buildCache({
    entries,
    root: s.mimicRoot,
    chexmask: rows,
    out,
    shardSize: 40,
    concurrency: 2,
  });
  assert.is(sum.cached, rows.size);
  assert.is(sum.skipped.counts['no-chexmask'], entries.length - rows.size);
  const cache = openCache(out);
  assert.is(cache.entries.length, rows.size);
  const idx = [0, 5, cache.entries.length - 1];
  for (const variant of ['original', 'masked'] as const) {
    const b = cache.batch(idx, variant);
    assert.is(b.n, 3);
    assert.is(b.x.length, 3 * 3 * 224 * 224);
    assert.is(b.labels.length, 15);
    idx.forEach((i, k) => {
      const e = cache.entries[i];
      assert.equal(Array.from(b.labels.subarray(k * 5, k * 5 + 5)), e.labels);
      assert.equal(Array.from(b.labelMask.subarray(k * 5, k * 5 + 5)), e.labelMask);
    });
    for (let k = 0; k < idx.length; k++) {
      const e = cache.entries[idx[k]];
      const direct = await preprocess(join(s.mimicRoot, e.path), rows.get(e.dicomId));
      const want = variant === 'original' ? direct.original : (direct.masked as Float32Array);
      const got = b.x.subarray(k * 3 * 224 * 224, (k + 1) * 3 * 224 * 224);
      assert.ok(
        want.every((v, p) => v === got[p]),
        `${variant} entry ${idx[k]} differs`,
      );
    }
  }
  // masked and original agree outside the contour
  const o = cache.batch([1], 'original').x;
  const m = cache.batch([1], 'masked').x;
  const { contour } = cache.planes(1);
  for (let p = 0; p < 224 * 224; p++)
    if (!(contour[p] & CONTOUR_BITS))
      for (let c = 0; c < 3; c++) assert.is(m[c * 224 * 224 + p], o[c * 224 * 224 + p]);
  // the plane also keeps the filled regions (bits 3-5): equal to the masks drawn from the row, and
  // every contour pixel lies inside its region
  const e1 = cache.entries[1];
  const direct1 = await preprocess(join(s.mimicRoot, e1.path), rows.get(e1.dicomId));
  const filled = regionMasksOnGrid(rows.get(e1.dicomId) as ChexmaskRow, direct1.geometry);
  const got = cache.regionMasks([1]);
  let inside = 0;
  for (let p = 0; p < 224 * 224; p++) {
    const want = REGIONS.reduce((b, r) => b | (filled[r]?.[p] ? REGION_BITS[r] : 0), 0);
    assert.is(got[p], want, `region bits at pixel ${p}`);
    assert.is(contour[p] & CONTOUR_BITS & ~got[p], 0, `contour outside its region at ${p}`);
    if (got[p]) inside++;
  }
  assert.ok(inside > 0.15 * 224 * 224, `regions cover ${inside} pixels`);
  assert.is(
    cache.indicesOf('train').length + cache.indicesOf('validate').length + cache.indicesOf('test').length,
    cache.entries.length,
  );
  cache.close();
  // no temp files left behind
  const files = readdirSync(sum.dir);
  assert.ok(
    files.every((f) => !f.includes('.tmp')),
    files.join(','),
  );
});

test('resumable: a rebuild reuses finished shards and redoes a missing one; settings key the directory', async () => {
  const { s, entries, rows } = await setup();
  const out = tempDir();
  const part = entries.slice(0, 50);
  const a = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  assert.ok(a.shardsBuilt >= 3);
  const b = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  assert.is(b.shardsBuilt, 0);
  assert.is(b.shardsReused, a.shardsBuilt);
  rmSync(join(a.dir, 'shard-00001.json'));
  const c = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  assert.is(c.shardsBuilt, 1);
  assert.is(c.cached, a.cached);
  // a changed CheXmask row (same ids) rebuilds only its shard
  const moved = new Map(rows);
  const id0 = part.find((e) => rows.has(e.dicomId))?.dicomId as string;
  const r0 = rows.get(id0) as ChexmaskRow;
  moved.set(id0, { ...r0, landmarks: r0.landmarks.map((v) => v + 3) });
  const m = await buildCache({ entries: part, root: s.mimicRoot, chexmask: moved, out, shardSize: 16 });
  assert.is(m.shardsBuilt, 1);
  const d = await buildCache({
    entries: part,
    root: s.mimicRoot,
    chexmask: rows,
    out,
    shardSize: 16,
    overlay: { thickness: 1 },
  });
  assert.is.not(d.key, a.key);
  assert.throws(() => openCache(out), /several caches/);
  assert.is(openCache(out, { overlay: { thickness: 1 } }).key, d.key);
  // mean/std are not part of the key: the paper's squash preset is
  const e = await buildCache({
    entries: part.slice(0, 4),
    root: s.mimicRoot,
    chexmask: rows,
    out: tempDir(),
    preprocess: { preset: 'paper' },
  });
  assert.is.not(e.key, a.key);
});

test('a rebuild asked for another shard size keeps the layout of the cache already there: same digest, every shard reused', async () => {
  const { s, entries, rows } = await setup();
  const out = tempDir();
  const part = entries.slice(0, 50);
  const a = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  const digest = () => JSON.parse(readFileSync(join(a.dir, 'cache.json'), 'utf8')).digest;
  const before = digest();
  // another layout would change the digest that runs record: none of them could resume
  const b = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 64 });
  assert.equal([b.shardsBuilt, b.shardsReused], [0, a.shardsBuilt]);
  assert.equal(b.keptShardSize, { kept: 16, asked: 64 });
  assert.match(rebuildNotes(b).join('\n'), /kept the shard size of the cache already in .* \(16; asked 64\)/);
  assert.is(digest(), before);
  // the same size asked: nothing to say
  const c = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  assert.is(c.keptShardSize, undefined);
  // a new folder takes the size asked
  const d = await buildCache({
    entries: part,
    root: s.mimicRoot,
    chexmask: rows,
    out: tempDir(),
    shardSize: 64,
  });
  assert.is(d.shardsBuilt, 1);
  // a FIFO planted as a shard manifest is refused by name, not read (a read would block forever)
  rmSync(join(a.dir, 'shard-00000.json'));
  spawnSync('mkfifo', [join(a.dir, 'shard-00000.json')]);
  await rejects(
    buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 64 }),
    /shard-00000\.json.*not a regular file/,
  );
});

test('an index naming a dicomId twice is refused, naming both rows; each cached entry is its own index row', async () => {
  const { s, entries, rows } = await setup();
  const part = entries.filter((e) => rows.has(e.dicomId)).slice(0, 8);
  const first = part[1]!;
  // two index files concatenated, or a split edited by hand: the same image with another split
  const other: Split = first.split === 'test' ? 'train' : 'test';
  const twice = [...part, { ...first, split: other }];
  const out = tempDir();
  const opts = { root: s.mimicRoot, chexmask: rows, out, shardSize: 4 };
  const e = (await rejects(buildCache({ ...opts, entries: twice }), /repeats row 2/)) as DataError;
  assert.instance(e, DataError);
  assert.is(e.reason, 'bad-index');
  assert.equal(e.where, { file: 'index entries', row: 9, id: first.dicomId, field: 'dicomId' });
  assert.is(
    e.message,
    `index entries, row 9, id ${first.dicomId}, field "dicomId": repeats row 2 (split "${first.split}" there, "${other}" here); an image can be cached once: remove one of the rows`,
  );
  assert.equal(
    readdirSync(out).filter((d) => existsSync(join(out, d, 'cache.json'))),
    [],
    'nothing cached',
  );
  // without the repeat: slot by slot, the entries are the index rows themselves, in index order
  const sum = await buildCache({ ...opts, entries: part });
  assert.is(sum.cached, 8);
  const cache = openCache(sum.dir);
  assert.equal(
    cache.entries.map(({ shard: _s, slot: _t, ...e }) => e),
    part,
  );
  assert.equal(
    cache.entries.map((e) => [e.shard, e.slot]),
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => [Math.floor(i / 4), i % 4]),
  );
  cache.close();
});

test('paint options apply at batch time (α, colours) without a rebuild', async () => {
  const { s, entries, rows } = await setup();
  const out = tempDir();
  await buildCache({ entries: entries.slice(0, 6), root: s.mimicRoot, chexmask: rows, out });
  const cache = openCache(out);
  const a = cache.batch([0], 'masked', { paint: { alpha: 0.2 } }).x;
  const b = cache.batch([0], 'masked', { paint: { alpha: 1 } }).x;
  const o = cache.batch([0], 'original').x;
  const { contour } = cache.planes(0);
  const p = contour.findIndex((v) => (v & CONTOUR_BITS) === 1 || (v & CONTOUR_BITS) === 2);
  assert.ok(p >= 0);
  assert.ok(o[p] < a[p] || a[p] === b[p]);
  assert.ok(a[p] <= b[p]);
  cache.close();
});

test('a settings folder planted as a link is refused, naming it, nothing written there; the cache folder itself may be a link', async () => {
  const { s, entries, rows } = await setup();
  const part = entries.slice(0, 12);
  // the cache folder on another disk: built through the link
  const disk = tempDir();
  const out = join(tempDir(), 'cache');
  symlinkSync(disk, out);
  const a = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  assert.ok(existsSync(join(disk, a.key, 'cache.json')));
  // a cache folder from someone else whose <key> leads elsewhere
  const handed = tempDir();
  const elsewhere = tempDir();
  mkdirSync(join(elsewhere, 'kept'));
  symlinkSync(elsewhere, join(handed, a.key));
  const err = await rejects(
    buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out: handed, shardSize: 16 }),
    /a symbolic link to a folder \(-> .*\) inside the cache folder .*refusing to write/,
  );
  assert.instance(err, DataError);
  assert.is((err as DataError).reason, 'linked-folder');
  assert.is((err as DataError).where.file, join(handed, a.key));
  assert.equal(readdirSync(elsewhere), ['kept'], 'nothing written to the link target');
});

test("a killed build's shard temp is removed by the next build; a live process's is left alone", async () => {
  const { s, entries, rows } = await setup();
  const part = entries.slice(0, 20);
  const out = tempDir();
  const a = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  const dead = spawnSync(process.execPath, ['-e', '']).pid; // exited: its pid names no process
  const stale = join(a.dir, `shard-00001.bin.tmp-${dead}-0a1b2c3d`);
  const live = join(a.dir, `shard-00001.bin.tmp-${process.ppid}-0a1b2c3d`); // another build still writing
  writeFileSync(stale, Buffer.alloc(4096));
  writeFileSync(live, Buffer.alloc(4096));
  const b = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  assert.is(b.shardsReused, 2);
  assert.not.ok(existsSync(stale), "the dead build's temp is gone");
  assert.ok(existsSync(live), "a live writer's temp is kept");
});

test('a stop mid-build drops the unfinished shard (no temp left) and keeps the finished ones; the next build completes it, equal to an uninterrupted build', async () => {
  const { s, entries, rows } = await setup();
  const part = entries.slice(0, 50);
  const whole = await buildCache({
    entries: part,
    root: s.mimicRoot,
    chexmask: rows,
    out: tempDir(),
    shardSize: 16,
  });
  const shards = Math.ceil(whole.planned / 16);
  assert.ok(shards >= 3);
  const out = tempDir();
  const signal = { stop: false };
  const err = await rejects(
    buildCache({
      entries: part,
      root: s.mimicRoot,
      chexmask: rows,
      out,
      shardSize: 16,
      concurrency: 2,
      signal,
      // Ctrl-C while the second shard is being decoded
      onProgress: (done) => {
        if (done === 20) signal.stop = true;
      },
    }),
    new RegExp(
      `^stopped building the image cache .* with 1 of ${shards} shard\\(s\\) finished; they are kept, and the same build run again continues from them$`,
    ),
  );
  assert.instance(err, InterruptedError);
  const dir = join(out, whole.key);
  assert.equal(
    readdirSync(dir).sort(),
    ['shard-00000.bin', 'shard-00000.json'],
    'the finished shard and nothing else: no temp, no cache.json',
  );
  const resumed = await buildCache({ entries: part, root: s.mimicRoot, chexmask: rows, out, shardSize: 16 });
  assert.is(resumed.shardsReused, 1);
  assert.is(resumed.shardsBuilt, shards - 1);
  const files = readdirSync(whole.dir).sort();
  assert.equal(readdirSync(dir).sort(), files);
  for (const f of files)
    if (f !== STAMPS_FILE) assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(whole.dir, f))), f);
  assert.is(openCache(out).digest, openCache(whole.dir).digest);
});

test.run();
