/**
 * Process exit with host buffers still held by JS: the buffers are released during static
 * destruction and must find the addon's pool alive (it once corrupted the heap at exit:
 * "malloc_consolidate(): unaligned fastbin chunk detected", abort, exit 134).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, requireModel } from './helpers.js';

test('exit after host buffers, records and training steps is clean (exit 0, no allocator abort)', () => {
  requireModel();
  for (let run = 0; run < 2; run++) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test/native/exit-child.ts')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.not.match(r.stderr, /malloc|free\(\)|corrupt|double free/, r.stderr);
    assert.is(r.status, 0, `exit ${r.status ?? r.signal}: ${r.stderr}`);
    assert.match(r.stdout, /done 5/, r.stdout);
  }
});

test.run();
