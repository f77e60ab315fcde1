/**
 * The GPU check's CPU dry run, end to end: every section of scripts/gpu-check.mjs (records, training,
 * state round trip, segmenter, attribution, data-parallel overhead, serving) passes on CPU, and the
 * process exits cleanly. Host buffers JS still holds at exit are released during static destruction;
 * they once found the addon's pool already destroyed and corrupted the heap ("malloc_consolidate():
 * unaligned fastbin chunk detected", abort, exit 134, after "all GPU checks passed").
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, requireModel } from './helpers.js';

test('gpu-check CPU dry run: all checks pass and the process exits 0 (no allocator abort at exit)', () => {
  requireModel();
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/gpu-check.mjs')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 600_000,
    env: {
      ...process.env,
      CXRMASK_GPU_CHECK_DEVICE: 'cpu',
      OUT: mkdtempSync(join(tmpdir(), 'cxrmask-gpucheck-')),
    },
  });
  const tail = `${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`;
  assert.not.match(r.stderr, /malloc|free\(\)|corrupt|double free/, tail);
  assert.is(r.status, 0, `exit ${r.status ?? r.signal}: ${tail}`);
  assert.match(r.stdout, /all GPU checks passed/, tail);
});

test.run();
