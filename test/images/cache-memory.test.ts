/**
 * A cache build holds concurrency × one record, not the shard: at --size 2048 a record is 8 MiB, and
 * the build used to hold the whole shard twice (44 images took 888 MB). Each build runs in a child
 * process so its peak RSS is its own.
 */
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { synthTree, tempDir } from '../data/helpers.js';

const SCRIPT = `
const { buildIndex } = await import('./ts/data/datasets/mimic.ts');
const { buildCache } = await import('./ts/images/cache-build.ts');
const [root, out, n] = process.argv.slice(1);
const { entries } = await buildIndex({ root });
const s = await buildCache({ entries: entries.slice(0, Number(n)), root, chexmask: null, requireMask: false,
  out, preprocess: { size: 2048 }, concurrency: 2, shardSize: 1024 });
console.log(JSON.stringify({ cached: s.cached, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
`;

function peak(root: string, n: number): { cached: number; maxRssMB: number } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, root, tempDir(), String(n)],
    {
      encoding: 'utf8',
    },
  );
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { cached: number; maxRssMB: number };
}

test('peak RSS of a 2048² cache build does not grow with the shard', async () => {
  const s = await synthTree();
  const small = peak(s.mimicRoot, 2);
  const big = peak(s.mimicRoot, 24);
  assert.is(big.cached, 24);
  // 22 more records of 8 MiB: 176 MiB if held once, 352 MiB as before (316 measured); the streaming
  // build stays flat, and 128 MiB leaves room for libvips caches and a loaded machine.
  const grown = big.maxRssMB - small.maxRssMB;
  assert.ok(grown < 128, `peak RSS grew by ${grown.toFixed(0)} MiB from 2 to 24 records`);
});

test.run();
