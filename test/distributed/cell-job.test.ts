/**
 * The cell worker's job comes from CXRMASK_CELL_JOB (set by the launcher): unset, damaged or
 * incomplete, the worker fails with an error naming the variable and what is wrong, not a raw
 * SyntaxError from JSON.parse.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCellJob } from '../../ts/distributed/cell-job.js';

const job = { runDir: 'runs/r', cacheDir: 'cache', device: 'cpu', cell: 'lp-original-s0' };

test('a job the launcher writes is read back as it was', () => {
  assert.equal(parseCellJob(JSON.stringify(job)), job);
});

test('unset, not JSON, or not a job: an error naming the variable and the problem', () => {
  const cases: [string | undefined, RegExp][] = [
    [undefined, /CXRMASK_CELL_JOB is not set/],
    ['', /CXRMASK_CELL_JOB is not set/],
    ['{"runDir": "runs/r",', /CXRMASK_CELL_JOB is not valid JSON \(.+\): \{"runDir": "runs\/r",/],
    ['null', /CXRMASK_CELL_JOB is not a cell job/],
    [
      JSON.stringify({ ...job, cell: undefined }),
      /CXRMASK_CELL_JOB is not a cell job \{runDir, cacheDir, device, cell\}:\n {2}- cell:/,
    ],
    [
      JSON.stringify({ ...job, device: 0 }),
      /CXRMASK_CELL_JOB is not a cell job \{runDir, cacheDir, device, cell\}:\n {2}- device:/,
    ],
  ];
  for (const [raw, re] of cases) assert.throws(() => parseCellJob(raw), re, String(raw));
});

test('the worker started with a damaged variable exits 1 with one error line naming it, no stack', () => {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(process.cwd(), 'ts', 'distributed', 'cell-worker.ts')],
    { encoding: 'utf8', env: { ...process.env, CXRMASK_CELL_JOB: '{not json' }, timeout: 120_000 },
  );
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /^error: cell-worker: CXRMASK_CELL_JOB is not valid JSON/m);
  assert.not.match(r.stderr, /\n\s+at /, 'no JS stack');
});

test('a worker started by hand exits with the CLI’s code for its error: 2 for a bad config, one error line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-cell-job-'));
  try {
    const runDir = join(dir, 'run');
    mkdirSync(runDir);
    writeFileSync(join(runDir, 'config.json'), JSON.stringify({ name: 'x', seeds: 'zero' }));
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(process.cwd(), 'ts', 'distributed', 'cell-worker.ts')],
      {
        encoding: 'utf8',
        env: { ...process.env, CXRMASK_CELL_JOB: JSON.stringify({ ...job, runDir }) },
        timeout: 120_000,
      },
    );
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, /^error: invalid .*config\.json:\n/);
    assert.is(r.stderr.match(/^error:/gm)?.length, 1, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
