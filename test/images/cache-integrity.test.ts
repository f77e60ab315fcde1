/**
 * A damaged cache is an error naming the shard, never "bad images": truncated and
 * bit-flipped shards are refused when the cache is opened and rebuilt (not reused) by a rebuild;
 * open stays cheap because verified shards are not re-hashed.
 */

import { spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import type { IndexEntry } from '../../ts/data/mimic.js';
import { openCache } from '../../ts/images/cache.js';
import { buildCache, rebuildNotes } from '../../ts/images/cache-build.js';
import { DECODER_REVISION, decoderChangesSince } from '../../ts/images/cache-format.js';

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

function refuses(dir: string, re: RegExp): DataError {
  let err: unknown;
  try {
    openCache(dir).close();
  } catch (e) {
    err = e;
  }
  assert.instance(err, DataError, 'a damaged cache must not open');
  assert.match((err as Error).message, re);
  return err as DataError;
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

test("a parent folder whose caches all differ from the settings asked names each one's difference", async () => {
  const out = tempDir();
  const s = await synthTree();
  const all = (await buildIndex({ root: s.mimicRoot })).entries.slice(0, 12);
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    all.map((e) => e.dicomId),
  );
  const base = { entries: all, root: s.mimicRoot, chexmask: rows, out, shardSize: 12 };
  // what `cxrmask index` + `cxrmask cache` build by default (U-Zeros), then a stricter minDice
  const zeros = await buildCache({ ...base, labelPolicy: { uncertain: 'zeros', blank: 'zeros' } });
  const strict = await buildCache({
    ...base,
    labelPolicy: { uncertain: 'ignore', blank: 'zeros' },
    minDice: 0.9,
  });
  // a sibling whose cache.json is a FIFO is passed over (a plain read of it would wait forever)
  mkdirSync(join(out, 'fifo'));
  assert.is(spawnSync('mkfifo', [join(out, 'fifo', 'cache.json')]).status, 0);
  let err: unknown;
  try {
    // what `run` asks by default: U-Ignore
    openCache(out, { data: { minDice: 0.7, labelPolicy: { uncertain: 'ignore', blank: 'zeros' } } });
  } catch (e) {
    err = e;
  }
  assert.instance(err, DataError, 'no cache matches');
  assert.is((err as DataError).reason, 'no-matching-cache');
  const msg = (err as Error).message;
  assert.match(
    msg,
    `${zeros.key}: label policy uncertain=zeros, blank=zeros (cache) vs uncertain=ignore, blank=zeros (asked)`,
  );
  assert.match(msg, `${strict.key}: minDice 0.9 (cache) vs 0.7 (asked)`);
  assert.not.match(msg, 'build it first');
  // an empty parent folder still says to build one
  try {
    openCache(tempDir(), { data: { minDice: 0.7, labelPolicy: null } });
    assert.unreachable();
  } catch (e) {
    assert.is((e as DataError).reason, 'missing-cache');
    assert.match((e as Error).message, 'build it first');
  }
});

const HINT = 'the cache is damaged: rebuild it with `cxrmask cache` (same options; intact shards are reused)';

test('cache.json is checked against itself: an edited size, key or digest, a missing shards list or entries.jsonl are bad-cache', async () => {
  const { sum } = await build(tempDir());
  const meta = JSON.parse(readFileSync(join(sum.dir, 'cache.json'), 'utf8'));
  /** A copy of the cache with cache.json edited by `edit` (or another change made by `also`). */
  const copy = (edit: (m: typeof meta) => void, also?: (dir: string) => void) => {
    const dir = join(tempDir(), sum.key);
    cpSync(sum.dir, dir, { recursive: true });
    const m = structuredClone(meta);
    edit(m);
    writeFileSync(join(dir, 'cache.json'), JSON.stringify(m, null, 2));
    also?.(dir);
    return dir;
  };
  const cases: [string, (m: typeof meta) => void, string, string][] = [
    // one bit (0x34 -> 0x35): it used to open and cut 225² planes out of 224² records
    ['size', (m) => (m.size = 225), 'size', '225 ≠ preprocess.size 224'],
    ['recordBytes', (m) => (m.recordBytes = 100353), 'recordBytes', '100353 ≠ 2 × size² (size 224)'],
    ['no shards', (m) => delete m.shards, 'shards', 'Invalid input: expected array, received undefined'],
    [
      'shard outside',
      (m) => (m.shards[0].file = '../x.bin'),
      'shards.0.file',
      'Invalid string: must match pattern /^shard-\\d+\\.bin$/',
    ],
    [
      'kernel',
      (m) => (m.preprocess.kernel = 'lanczos3'),
      'key',
      `${meta.key} is not the key of the recorded settings`,
    ],
    ['minDice', (m) => (m.build.minDice = 0.9), 'key', `${meta.key} is not the key of the recorded settings`],
    [
      'digest',
      (m) => (m.digest = '0'.repeat(32)),
      'digest',
      `${'0'.repeat(32)} is not the digest of entriesSha256 and shards`,
    ],
  ];
  for (const [what, edit, field, says] of cases) {
    const dir = copy(edit);
    const e = refuses(dir, /cache\.json/);
    assert.is(e.reason, 'bad-cache', what);
    assert.equal(e.where, { file: join(dir, 'cache.json'), field }, what);
    assert.ok(
      e.message.startsWith(`${join(dir, 'cache.json')}, field "${field}": ${says}`),
      `${what}: ${e.message}`,
    );
    assert.ok(e.message.endsWith(HINT), what);
  }
  // entries.jsonl missing: the same refusal, not a raw ENOENT
  const gone = copy(
    () => {},
    (dir) => rmSync(join(dir, 'entries.jsonl')),
  );
  const e = refuses(gone, /entries\.jsonl: unreadable: ENOENT/);
  assert.is(e.reason, 'bad-cache');
  assert.equal(e.where, { file: join(gone, 'entries.jsonl') });
  assert.ok(e.message.endsWith(HINT));
  // the unedited copy opens
  const same = openCache(copy(() => {}));
  assert.is(same.entries.length, sum.cached);
  same.close();
});

/** A private copy of the synthetic MIMIC tree (its images get broken and repaired), its 48 first entries and their rows. */
async function privateTree() {
  const s = await synthTree();
  const root = tempDir();
  cpSync(s.mimicRoot, root, { recursive: true });
  const all = (await buildIndex({ root: s.mimicRoot })).entries.slice(0, 48);
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    all.map((e) => e.dicomId),
  );
  const planned = all.filter((e) => rows.has(e.dicomId));
  return { s, root, all, rows, planned };
}

test('a rebuild retries the images that failed before: repaired ones are cached, only their shard is rebuilt', async () => {
  const { s, root, all, rows, planned } = await privateTree();
  assert.ok(planned.length > 24, `${planned.length} planned`);
  const out = tempDir();
  const opts = { entries: all, root, chexmask: rows, out, shardSize: 12 };
  const file = (k: number) => join(root, planned[k]!.path);
  // shard 0: a missing file and an empty one (a download still in progress); shard 1: a corrupt one
  rmSync(file(1));
  writeFileSync(file(2), '');
  writeFileSync(file(14), readFileSync(file(14)).subarray(0, 200));
  const first = await buildCache(opts);
  const nShards = Math.ceil(planned.length / 12);
  assert.is(first.shardsBuilt, nShards);
  assert.is(first.cached, planned.length - 3);
  assert.is(first.skipped.counts['image-missing'], 1);
  assert.is(first.skipped.counts['image-corrupt'], 2);
  assert.equal([first.retried, first.recovered, first.rebuilt], [0, 0, {}]);
  // nothing repaired: the three are read again (and only they), every shard is reused
  const same = await buildCache(opts);
  assert.equal(
    [same.shardsBuilt, same.shardsReused, same.retried, same.recovered, same.cached],
    [0, nShards, 3, 0, first.cached],
  );
  assert.equal(same.rebuilt, {});
  assert.equal(same.skipped.counts, first.skipped.counts);
  assert.equal(rebuildNotes(same), [
    'retried 3 image(s) that had failed in an earlier build: 0 now cached, 3 still failing (counted in skipped)',
  ]);
  // the missing and the empty file are put back: shard 0 is rebuilt, shard 1 (still corrupt) reused
  copyFileSync(join(s.mimicRoot, planned[1]!.path), file(1));
  copyFileSync(join(s.mimicRoot, planned[2]!.path), file(2));
  const fixed = await buildCache(opts);
  assert.equal(
    [fixed.shardsBuilt, fixed.shardsReused, fixed.retried, fixed.recovered, fixed.cached],
    [1, nShards - 1, 3, 2, planned.length - 1],
  );
  assert.equal(fixed.rebuilt, { 'recovered-images': 1 });
  assert.is(fixed.skipped.counts['image-missing'], undefined);
  assert.is(fixed.skipped.counts['image-corrupt'], 1);
  assert.equal(rebuildNotes(fixed), [
    'rebuilt 1 shard(s) an earlier build left: 1 with images that had failed and now decode',
    'retried 3 image(s) that had failed in an earlier build: 2 now cached, 1 still failing (counted in skipped)',
  ]);
  // the same cache as a fresh build of the repaired tree
  const fresh = await buildCache({ ...opts, out: tempDir() });
  const [got, want] = [openCache(fixed.dir), openCache(fresh.dir)];
  assert.is(got.digest, want.digest);
  got.close();
  want.close();
});

test('an image replaced under the same path (new pixels) is re-decoded on rebuild; only its shard is rebuilt', async () => {
  const { root, all, rows, planned } = await privateTree();
  const out = tempDir();
  const opts = { entries: all, root, chexmask: rows, out, shardSize: 12 };
  const nShards = Math.ceil(planned.length / 12);
  const first = await buildCache(opts);
  assert.is(first.cached, planned.length);
  const man = JSON.parse(readFileSync(join(first.dir, 'shard-00001.json'), 'utf8'));
  assert.is(man.sources.length, man.records.length, 'each record names its source file version');
  const k = 14; // shard 1
  const id = planned[k]!.dicomId;
  const file = join(root, planned[k]!.path);
  const gray = (dir: string) => {
    const c = openCache(dir);
    try {
      return Uint8Array.from(c.planes(c.entries.findIndex((e) => e.dicomId === id)).gray);
    } finally {
      c.close();
    }
  };
  const before = gray(first.dir);
  // a corrected scan: same size in pixels (its CheXmask row still fits), other pixels, a later mtime
  const replaced = await sharp(readFileSync(file)).negate().jpeg({ quality: 95 }).toBuffer();
  writeFileSync(file, replaced);
  const { mtimeMs } = statSync(file);
  utimesSync(file, new Date(mtimeMs + 60_000), new Date(mtimeMs + 60_000));
  const again = await buildCache(opts);
  assert.equal(
    [again.shardsBuilt, again.shardsReused, again.changed, again.cached],
    [1, nShards - 1, 1, planned.length],
  );
  assert.equal(again.rebuilt, { 'changed-images': 1 });
  assert.equal(rebuildNotes(again), [
    'rebuilt 1 shard(s) an earlier build left: 1 with image files changed since they were cached (size or modification time)',
    're-decoded 1 image(s) whose file changed since it was cached (and their shards)',
  ]);
  const after = gray(again.dir);
  assert.not.equal(after, before, 'the cache kept the old pixels');
  // the same cache as a fresh build of the changed tree; and nothing more to redo
  const fresh = await buildCache({ ...opts, out: tempDir() });
  assert.equal(after, gray(fresh.dir));
  const [got, want] = [openCache(again.dir), openCache(fresh.dir)];
  assert.is(got.digest, want.digest);
  got.close();
  want.close();
  const same = await buildCache(opts);
  assert.equal([same.shardsBuilt, same.changed, same.unstamped], [0, 0, 0]);
  // a file gone since is not a change: its record keeps the pixels it had
  rmSync(join(root, planned[3]!.path));
  const gone = await buildCache(opts);
  assert.equal([gone.shardsBuilt, gone.changed, gone.cached], [0, 0, planned.length]);
});

test('a cache from before source versions were recorded is kept (no rebuild), said once, and stamped for next time', async () => {
  const { root, all, rows, planned } = await privateTree();
  const out = tempDir();
  const opts = { entries: all, root, chexmask: rows, out, shardSize: 12 };
  const nShards = Math.ceil(planned.length / 12);
  const first = await buildCache(opts);
  for (let k = 0; k < nShards; k++) {
    const p = join(first.dir, `shard-${String(k).padStart(5, '0')}.json`);
    const { sources: _, ...old } = JSON.parse(readFileSync(p, 'utf8'));
    writeFileSync(p, JSON.stringify(old));
  }
  const old = await buildCache(opts);
  assert.equal([old.shardsBuilt, old.shardsReused, old.unstamped, old.changed], [0, nShards, nShards, 0]);
  assert.equal(rebuildNotes(old), [
    `warning: ${nShards} shard(s) from an earlier version recorded no source file sizes and times: kept as they are, with the files as they are now recorded; an image replaced before this run is not seen (delete the cache folder to re-decode everything)`,
  ]);
  const man = JSON.parse(readFileSync(join(first.dir, 'shard-00000.json'), 'utf8'));
  assert.is(man.sources.length, man.records.length);
  // said once: the next build has the stamps and sees a replacement made from now on
  const file = join(root, planned[0]!.path);
  writeFileSync(file, await sharp(readFileSync(file)).negate().jpeg().toBuffer());
  const { mtimeMs } = statSync(file);
  utimesSync(file, new Date(mtimeMs + 60_000), new Date(mtimeMs + 60_000));
  const next = await buildCache(opts);
  assert.equal([next.unstamped, next.changed, next.shardsBuilt], [0, 1, 1]);
});

/** The first 24 entries of the synthetic tree (two shards of 12) and their CheXmask rows. */
async function twoShards() {
  const s = await synthTree();
  const all = (await buildIndex({ root: s.mimicRoot })).entries.slice(0, 24);
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    all.map((e) => e.dicomId),
  );
  return { root: s.mimicRoot, all, rows };
}

/** The CXRMASK_CACHE_DECODER warnings emitted while `f` runs (they come on the next tick). */
async function decoderWarnings(f: () => void): Promise<string[]> {
  const codes: string[] = [];
  const listen = (w: Error & { code?: string }) => {
    if (w.code === 'CXRMASK_CACHE_DECODER') codes.push(w.message);
  };
  process.on('warning', listen);
  try {
    f();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', listen);
  }
  return codes;
}

/** A cache folder as a build before decoder revisions were recorded left it: no `decoder` anywhere. */
function forgetDecoder(dir: string, shards: number): void {
  for (const f of ['cache.json', ...Array.from({ length: shards }, (_, k) => shardFile(k))]) {
    const { decoder: _, ...rest } = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    writeFileSync(join(dir, f), JSON.stringify(rest));
  }
}
const shardFile = (k: number) => `shard-${String(k).padStart(5, '0')}.json`;

test('a cache decoded by an older decoder revision is kept, warned about once per folder on open, and its revision survives a rebuild', async () => {
  const out = tempDir();
  const { sum, all } = await build(out);
  const nShards = Math.ceil(all.length / 12);
  const meta = () => JSON.parse(readFileSync(join(sum.dir, 'cache.json'), 'utf8'));
  const shardJson = (k: number) => join(sum.dir, `shard-${String(k).padStart(5, '0')}.json`);
  assert.is(meta().decoder, DECODER_REVISION);
  assert.is(JSON.parse(readFileSync(shardJson(0), 'utf8')).decoder, DECODER_REVISION);
  assert.equal([sum.olderDecoder, sum.decoder], [0, DECODER_REVISION]);
  const codes: string[] = [];
  const listen = (w: Error & { code?: string }) => {
    if (w.code === 'CXRMASK_CACHE_DECODER') codes.push(w.message);
  };
  process.on('warning', listen);
  try {
    openCache(sum.dir).close();
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    assert.equal(codes, [], 'a cache of this decoder opens without a word');
    forgetDecoder(sum.dir, nShards);
    openCache(sum.dir).close();
    openCache(out).close(); // the same folder through its parent: still once
    await new Promise((r) => setImmediate(r));
    assert.is(codes.length, 1, codes.join('\n'));
    assert.ok(
      codes[0]!.startsWith(`${sum.dir}: built by an older cxrmask (decoder revision 1, now 2)`),
      codes[0],
    );
    assert.match(
      codes[0]!,
      /enlarged with libvips' own pixel centres .* kept their stored gray \(now black\)/,
    );
    // a rebuild keeps the shards (no forced re-decode) and says so; cache.json keeps the oldest revision
    const again = (await build(out, all)).sum;
    assert.equal(
      [again.shardsBuilt, again.shardsReused, again.olderDecoder, again.decoder],
      [0, nShards, nShards, 1],
    );
    assert.equal(rebuildNotes(again), [
      `warning: ${nShards} shard(s) were decoded by an older cxrmask and kept: ${decoderChangesSince(1)}; delete ${sum.dir} to re-decode them if the images are small or transparent`,
    ]);
    assert.is(meta().decoder, 1);
    // one shard decoded anew: the cache still holds older ones, so it still says the oldest
    truncateSync(join(sum.dir, 'shard-00001.bin'), 0);
    const mixed = (await build(out, all)).sum;
    assert.equal([mixed.shardsBuilt, mixed.olderDecoder, meta().decoder], [1, nShards - 1, 1]);
    assert.is(JSON.parse(readFileSync(shardJson(1), 'utf8')).decoder, DECODER_REVISION);
    // every shard decoded anew (the folder deleted): the current revision, and no warning on open
    rmSync(sum.dir, { recursive: true });
    const fresh = (await build(out, all)).sum;
    assert.equal([fresh.shardsBuilt, fresh.olderDecoder, meta().decoder], [nShards, 0, DECODER_REVISION]);
  } finally {
    process.off('warning', listen);
  }
});

test('an older cache of JPEGs larger than its size decodes as before: no warning on open, and a rebuild marks its shards current', async () => {
  const { root, all, rows } = await twoShards();
  // 160×192 JPEGs into a 128 grid: shrunk, opaque, untouched by the newer decoder
  const opts = {
    entries: all,
    root,
    chexmask: rows,
    out: tempDir(),
    shardSize: 12,
    preprocess: { size: 128 },
  };
  const sum = await buildCache(opts);
  const decoderOf = (f: string) => JSON.parse(readFileSync(join(sum.dir, f), 'utf8')).decoder;
  const decoderOpened = () => {
    const c = openCache(sum.dir);
    c.close();
    return c.decoder;
  };
  assert.is(decoderOpened(), DECODER_REVISION);
  forgetDecoder(sum.dir, 2);
  assert.is(decoderOpened(), 1, 'a cache.json without the field: revision 1');
  const said = await decoderWarnings(() => openCache(sum.dir).close());
  assert.equal(said, [], 'nothing to re-decode, nothing said');
  const again = await buildCache(opts);
  assert.equal(
    [again.shardsBuilt, again.shardsReused, again.olderDecoder, again.decoder],
    [0, 2, 0, DECODER_REVISION],
  );
  assert.equal(rebuildNotes(again), []);
  for (const f of ['cache.json', shardFile(0), shardFile(1)]) assert.is(decoderOf(f), DECODER_REVISION, f);
});

test('an older cache of PNGs: a rebuild marks the shards of opaque PNGs current and keeps the one holding a transparent PNG', async () => {
  const { root: jpegRoot, all, rows } = await twoShards();
  // the same images as PNGs (gray, opaque), entry 12 with a transparent band; the MIMIC layout keeps
  // its .jpg names (the decoders go by the bytes, the header check too)
  const root = tempDir();
  for (const [i, e] of all.entries()) {
    mkdirSync(join(root, e.path, '..'), { recursive: true });
    const gray = sharp(join(jpegRoot, e.path)).grayscale();
    if (i !== 12) await gray.png().toFile(join(root, e.path));
    else {
      const { data, info } = await gray.raw().toBuffer({ resolveWithObject: true });
      const la = Buffer.alloc(info.width * info.height * 2);
      for (let p = 0; p < info.width * info.height; p++) {
        la[2 * p] = data[p]!;
        la[2 * p + 1] = Math.floor(p / info.width) < 20 ? 0 : 255;
      }
      await sharp(la, { raw: { width: info.width, height: info.height, channels: 2 } })
        .png()
        .toFile(join(root, e.path));
    }
  }
  const out = tempDir();
  const opts = { entries: all, root, chexmask: rows, out, shardSize: 12, preprocess: { size: 128 } };
  const sum = await buildCache(opts);
  forgetDecoder(sum.dir, 2);
  const again = await buildCache(opts);
  assert.equal([again.shardsReused, again.olderDecoder, again.decoder], [2, 1, 1]);
  // the transparent image's shard keeps revision 1 (absent), the other is marked current
  const decoderOf = (k: number) => JSON.parse(readFileSync(join(sum.dir, shardFile(k)), 'utf8')).decoder ?? 1;
  const held = readFileSync(join(sum.dir, 'entries.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { dicomId: string; shard: number });
  const k = held.find((e) => e.dicomId === all[12]!.dicomId)!.shard;
  assert.equal([decoderOf(k), decoderOf(1 - k)], [1, DECODER_REVISION]);
});

test('image limits are part of a shard: raising --max-pixels rebuilds and admits the images refused before', async () => {
  const { root, all, rows, planned } = await privateTree();
  const pixels = await Promise.all(
    planned.map(async (e) => {
      const m = await sharp(join(root, e.path)).metadata();
      return m.width * m.height;
    }),
  );
  const cap = [...pixels].sort((a, b) => a - b)[Math.floor(pixels.length / 2)]!;
  const over = pixels.filter((p) => p > cap).length;
  assert.ok(over > 0 && over < planned.length, `${over} of ${planned.length} over ${cap}`);
  const out = tempDir();
  const opts = { entries: all, root, chexmask: rows, out, shardSize: 12 };
  const nShards = Math.ceil(planned.length / 12);
  const capped = await buildCache({ ...opts, imageLimits: { maxPixels: cap } });
  assert.is(capped.skipped.counts['image-too-large'], over);
  assert.is(capped.cached, planned.length - over);
  const again = await buildCache({ ...opts, imageLimits: { maxPixels: cap } });
  assert.equal(
    [again.shardsBuilt, again.retried, again.recovered, again.cached],
    [0, over, 0, capped.cached],
  );
  const raised = await buildCache(opts);
  assert.equal([raised.shardsBuilt, raised.shardsReused, raised.cached], [nShards, 0, planned.length]);
  assert.equal(raised.rebuilt, { 'image-limits': nShards });
  assert.is(raised.skipped.counts['image-too-large'], undefined);
  assert.equal(rebuildNotes(raised), [
    `rebuilt ${nShards} shard(s) an earlier build left: ${nShards} built under other image limits (--max-pixels, --max-image-size) or before limits were recorded`,
  ]);
  // the manifest records the limits each shard was decoded under
  const man = JSON.parse(readFileSync(join(raised.dir, 'shard-00000.json'), 'utf8'));
  assert.equal(man.limits, {
    maxFileBytes: 256 * 1024 * 1024,
    maxPixels: 50_000_000,
    formats: ['jpeg', 'png', 'dicom'],
  });
});

test.run();
