/**
 * The `--nproc` launcher (ts/distributed/launch.ts) with stand-in ranks: a Ctrl-C to the terminal's
 * process group leaves the launcher waiting for its ranks (it died at once before, giving the prompt
 * back while they ran), a rank killed by a signal is said to be, and each rank gets its share of the
 * cores as OMP_NUM_THREADS unless the user set it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { launchLocal } from '../../ts/distributed/launch.js';
import { tempDir } from '../data/helpers.js';

const LAUNCH = join(import.meta.dirname, '..', '..', 'ts', 'distributed', 'launch.ts');

/** A stand-in rank: writes its rank and OMP_NUM_THREADS, then does what `body` says. */
function rankScript(dir: string, body: string): string {
  const file = join(dir, 'rank.cjs');
  writeFileSync(
    file,
    `const fs = require('fs');
     fs.writeFileSync(${JSON.stringify(dir)} + '/rank-' + process.env.RANK, String(process.env.OMP_NUM_THREADS));
     ${body}`,
  );
  return file;
}

/** launchLocal's stderr while it runs. */
async function launched(nproc: number, script: string, env: NodeJS.ProcessEnv) {
  const write = process.stderr.write;
  let err = '';
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await launchLocal(nproc, [script], { env, execArgv: [] });
    return { code, err };
  } finally {
    process.stderr.write = write;
  }
}

test('a rank killed by a signal is said to be (the OOM killer is a SIGKILL, not "exit code 1"); the others are stopped', async () => {
  const dir = tempDir('cxrmask-launch-');
  const script = rankScript(
    dir,
    "if (process.env.RANK === '1') process.kill(process.pid, 'SIGKILL'); else setTimeout(() => {}, 60000);",
  );
  const { code, err } = await launched(2, script, { PATH: process.env['PATH'] });
  assert.is(code, 1);
  assert.match(
    err,
    /cxrmask: rank 1 was killed by SIGKILL \(out of memory\? the kernel log says\); stopping the others/,
  );
});

test('each rank gets OMP_NUM_THREADS = its share of the cores, said once; a value the user set is kept', async () => {
  const dir = tempDir('cxrmask-launch-');
  const script = rankScript(dir, '');
  const share = Math.max(1, Math.floor(availableParallelism() / 2));
  const a = await launched(2, script, { PATH: process.env['PATH'] });
  assert.is(a.code, 0, a.err);
  assert.equal(
    [readFileSync(join(dir, 'rank-0'), 'utf8'), readFileSync(join(dir, 'rank-1'), 'utf8')],
    [String(share), String(share)],
  );
  assert.match(a.err, new RegExp(`OMP_NUM_THREADS=${share} for each of the 2 ranks`));
  const b = await launched(2, script, { PATH: process.env['PATH'], OMP_NUM_THREADS: '3' });
  assert.is(readFileSync(join(dir, 'rank-1'), 'utf8'), '3');
  assert.not.match(b.err, /OMP_NUM_THREADS=/);
});

test("Ctrl-C to the terminal's process group: the launcher waits for its ranks and exits with their 130", async () => {
  const dir = tempDir('cxrmask-launch-');
  // each rank stops 300 ms after its SIGINT, as a training rank stops at its next step
  const script = rankScript(
    dir,
    `process.on('SIGINT', () => setTimeout(() => { fs.writeFileSync(${JSON.stringify(dir)} + '/stopped-' + process.env.RANK, String(Date.now())); process.exit(130); }, 300));
     setInterval(() => {}, 1000);`,
  );
  const main = join(dir, 'launcher.mjs');
  writeFileSync(
    main,
    `const { launchLocal } = await import(${JSON.stringify(LAUNCH)});
     const code = await launchLocal(2, [${JSON.stringify(script)}], { execArgv: [] });
     require('fs').writeFileSync(${JSON.stringify(join(dir, 'launcher-done'))}, String(Date.now()));
     process.exit(code);`.replace("require('fs')", "(await import('node:fs'))"),
  );
  // its own process group, as a terminal gives a foreground job
  const child = spawn(process.execPath, ['--import', 'tsx', main], { detached: true, stdio: 'ignore' });
  const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
  for (let i = 0; i < 200 && !(existsSync(join(dir, 'rank-0')) && existsSync(join(dir, 'rank-1'))); i++)
    await sleep(50);
  process.kill(-child.pid!, 'SIGINT');
  assert.is(await exited, 130);
  const done = Number(readFileSync(join(dir, 'launcher-done'), 'utf8'));
  for (const r of [0, 1])
    assert.ok(
      done >= Number(readFileSync(join(dir, `stopped-${r}`), 'utf8')),
      `rank ${r} outlived the launcher`,
    );
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.run();
