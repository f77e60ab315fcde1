/**
 * The small files the program reads from folders that may come from someone else (a run's run.lock,
 * a cache's entries.jsonl, a shard's manifest and its shards.verified.json, an index's index.jsonl
 * and summary.json): a FIFO in place of one used to block the read forever (eval, cache, run hung).
 * Refused naming it, or passed over where the file is only an optimisation. The calls run in a child process with a watchdog, so a
 * regression fails instead of hanging the suite.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { STAMPS_FILE } from '../../ts/images/cache-verify.js';
import { synthTree, tempDir } from '../data/helpers.js';

const SCRIPT = `
const { lockRun } = await import('./ts/experiment/run-lock.ts');
const { indexLabelPolicy, readIndex } = await import('./ts/data/mimic.ts');
const { openCache } = await import('./ts/images/cache.ts');
const { buildCache } = await import('./ts/images/cache-build.ts');
const { buildIndex } = await import('./ts/data/datasets/mimic.ts');
const a = JSON.parse(process.argv[1]);
const outcome = (f) => f().then(() => ({ accepted: true }), (e) => ({ reason: e.reason, message: e.message }));
const out = {
  lock: await outcome(async () => lockRun(a.run)),
  index: await outcome(async () => indexLabelPolicy(a.index)),
  stamps: await outcome(async () => openCache(a.stampsCache)),
  entries: await outcome(async () => openCache(a.entriesCache)),
  indexRows: await outcome(async () => readIndex(a.index)),
  manifest: await outcome(async () => {
    const { entries } = await buildIndex({ root: a.root });
    await buildCache({ entries: entries.slice(0, 20), root: a.root, chexmask: a.csv, out: a.manifestCache, shardSize: 16 });
  }),
};
console.log(JSON.stringify(out));
`;

test('a FIFO as run.lock, an index.jsonl or its summary.json, a cache entries.jsonl or a shard manifest is refused naming it; as the shard stamps it is passed over', async () => {
  const s = await synthTree();
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const dir = tempDir('cxrmask-state-files-');
  const fifo = (p: string) => {
    rmSync(p, { force: true });
    execFileSync('mkfifo', [p]);
    return p;
  };
  const run = join(dir, 'run');
  mkdirSync(run);
  const lock = fifo(join(run, 'run.lock'));
  const index = join(dir, 'index');
  mkdirSync(index);
  const summary = fifo(join(index, 'summary.json'));
  const indexRows = fifo(join(index, 'index.jsonl'));
  const build = async (out: string) =>
    buildCache({
      entries: entries.slice(0, 20),
      root: s.mimicRoot,
      chexmask: s.chexmaskCsv,
      out,
      shardSize: 16,
    });
  const stampsCache = (await build(join(dir, 'a'))).dir;
  fifo(join(stampsCache, STAMPS_FILE));
  const entriesCache = (await build(join(dir, 'c'))).dir;
  const entriesFile = fifo(join(entriesCache, 'entries.jsonl'));
  const manifestCache = join(dir, 'b');
  const manifest = fifo(join((await build(manifestCache)).dir, 'shard-00000.json'));

  const args = {
    run,
    index,
    stampsCache,
    entriesCache,
    manifestCache,
    root: s.mimicRoot,
    csv: s.chexmaskCsv,
  };
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, JSON.stringify(args)],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.is(r.signal, null, `killed after 120 s: a read blocked (${r.stderr})`);
  assert.is(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<
    string,
    { accepted?: boolean; reason?: string; message?: string }
  >;
  for (const [what, file] of [
    ['lock', lock],
    ['index', summary],
    ['manifest', manifest],
    ['entries', entriesFile],
    ['indexRows', indexRows],
  ] as const) {
    assert.is(got[what]!.reason, 'not-a-file', `${what}: ${JSON.stringify(got[what])}`);
    assert.is(got[what]!.message, `${file}: not a regular file (a FIFO); refusing to read it`);
  }
  // the stamps only spare re-hashing: without them every shard is hashed, and the cache opens
  assert.equal(got['stamps'], { accepted: true });
});

test.run();
