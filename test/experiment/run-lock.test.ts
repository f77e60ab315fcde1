/**
 * One process per run folder: two real processes resume the same folder; the
 * second is refused with a clear error naming the holder, the first finishes untouched. A lock left
 * by a dead process is taken over (and said so); a lock from another host is refused with the way out.
 * A run folder with a symlinked subfolder planted (`cells`, `plots`) is refused before anything is written; a run folder
 * that is itself a link (runs on a bigger disk) is used as usual.
 * Pure-JS fake backend; the processes run test/experiment/fixtures/resume-worker.ts.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { lockRun } from '../../ts/experiment/run-lock.js';
import { reevaluate } from '../../ts/report/reevaluate.js';
import { fakeBackend } from './fake-backend.js';

const RUN_LOCK_FILE = 'run.lock';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-run-lock-'));
const worker = join(import.meta.dirname, 'fixtures', 'resume-worker.ts');
const config = parseConfig({
  runsDir: join(tmp, 'runs'),
  name: 'lock',
  data: { cache: 'unused' },
  seeds: [0],
  trainVariants: ['original'],
  zeroshot: { enabled: false },
  finetune: { enabled: false },
  linearProbe: { epochs: 2, batchSize: 16, lr: 0.05 },
  metrics: { bootstrap: 10 },
});

function startWorker(
  runDir: string,
  env: Record<string, string> = {},
): {
  child: ChildProcess;
  done: Promise<{ code: number | null; out: string; err: string }>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', worker, runDir], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, out, err })),
  );
  return { child, done };
}

async function waitFor(path: string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path)) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let runDir = '';
const children: ChildProcess[] = [];

test('two processes resuming one folder at once: the second is refused, the first finishes', async () => {
  runDir = (await runExperiment({ config, backend: fakeBackend() })).runDir;
  rmSync(join(runDir, 'cells', 'lp-original-s0'), { recursive: true });
  const started = join(tmp, 'first-started');
  const go = join(tmp, 'first-go');
  // the first holds the folder in its first training step until `go` exists
  const first = startWorker(runDir, { RESUME_WORKER_STARTED: started, RESUME_WORKER_GO: go });
  await waitFor(started);
  const lock = JSON.parse(readFileSync(join(runDir, RUN_LOCK_FILE), 'utf8'));
  assert.is(lock.pid, first.child.pid);
  assert.is(lock.host, hostname());
  const second = await startWorker(runDir).done;
  assert.is(second.code, 2, second.err);
  assert.match(second.err, /DataError/);
  assert.match(
    second.err,
    new RegExp(`run\\.lock: the run folder is in use by process ${first.child.pid} on `),
  );
  assert.match(second.err, /wait for it to finish, or stop it/);
  writeFileSync(go, '');
  const r = await first.done;
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /resumed/);
  assert.ok(existsSync(join(runDir, 'cells', 'lp-original-s0', 'result.json')));
  assert.not.ok(existsSync(join(runDir, RUN_LOCK_FILE)), 'the lock is removed when the holder ends');
});

test('a forced exit (the second Ctrl-C: process.exit) takes the lock with it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-lock-exit-'));
  const lockModule = join(import.meta.dirname, '..', '..', 'ts', 'experiment', 'run-lock.ts');
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `const { lockRun } = await import(${JSON.stringify(lockModule)});
       await lockRun(${JSON.stringify(dir)});
       process.stdout.write('locked\\n');
       process.exit(130);`,
    ],
    { encoding: 'utf8' },
  );
  assert.is(r.stdout, 'locked\n', r.stderr);
  assert.is(r.status, 130);
  // from another host this lock could not be checked: the resume there would be refused until deleted by hand
  assert.not.ok(existsSync(join(dir, RUN_LOCK_FILE)), 'the lock outlived its process');
  rmSync(dir, { recursive: true, force: true });
});

test('a lock left by a dead process is taken over, and said so', async () => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  writeFileSync(
    join(runDir, RUN_LOCK_FILE),
    JSON.stringify({ pid: dead, host: hostname(), startedAt: '2026-01-01T00:00:00Z', command: 'x' }),
  );
  const phases: string[] = [];
  await runExperiment({
    config,
    backend: fakeBackend(),
    resume: runDir,
    onEvent: (e) => {
      if (e.kind === 'phase') phases.push(`${e.name}: ${e.detail ?? ''}`);
    },
  });
  assert.ok(
    phases.some(
      (p) => p.includes('stale lock removed') && p.includes(`process ${dead} is no longer running`),
    ),
    phases.join('\n'),
  );
  assert.not.ok(existsSync(join(runDir, RUN_LOCK_FILE)));
});

test("another host's lock is refused (its pid cannot be checked) with the way out; eval takes the lock too", async () => {
  writeFileSync(
    join(runDir, RUN_LOCK_FILE),
    JSON.stringify({ pid: 1, host: 'other-host', startedAt: '2026-01-01T00:00:00Z', command: 'cxrmask run' }),
  );
  for (const start of [
    () => runExperiment({ config, backend: fakeBackend(), resume: runDir }),
    () => reevaluate(runDir, fakeBackend()),
  ]) {
    try {
      await start();
      assert.unreachable('a held lock must refuse');
    } catch (e) {
      assert.is((e as Error).name, 'DataError');
      assert.match((e as Error).message, /in use by process 1 on other-host/);
      assert.match((e as Error).message, /if that process no longer runs, delete .*run\.lock/);
    }
  }
  rmSync(join(runDir, RUN_LOCK_FILE));
});

/** Every file below `dir` with its contents. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    try {
      out[f] = readFileSync(join(dir, f), 'latin1');
    } catch {
      out[f] = '<folder>';
    }
  }
  return out;
}

for (const folder of ['cells', 'plots']) {
  test(`a run folder with \`${folder}\` linked elsewhere: resume and eval are refused naming the link; nothing is written there`, async () => {
    const run = join(tmp, `planted-${folder}`);
    cpSync(runDir, run, { recursive: true });
    rmSync(join(run, 'cells', 'lp-original-s0'), { recursive: true }); // a resume would train it again
    const elsewhere = join(tmp, `elsewhere-${folder}`);
    renameSync(join(run, folder), elsewhere);
    // the target holds someone else's file by a name the report writes
    if (folder === 'plots') writeFileSync(join(elsewhere, 'macroAUROC.png'), "someone else's figure");
    symlinkSync(elsewhere, join(run, folder));
    const before = snapshot(elsewhere);
    for (const start of [
      () => runExperiment({ config, backend: fakeBackend(), resume: run }),
      () => reevaluate(run, fakeBackend()),
    ]) {
      try {
        await start();
        assert.unreachable('a planted folder link must refuse');
      } catch (e) {
        assert.is((e as Error).name, 'DataError', String(e));
        assert.is((e as { reason?: string }).reason, 'linked-folder');
        assert.match(
          (e as Error).message,
          `${join(run, folder)}: a symbolic link to a folder (-> ${elsewhere}) inside the run folder ${run}`,
        );
      }
    }
    assert.equal(snapshot(elsewhere), before, 'nothing written to the link target');
    assert.not.ok(existsSync(join(run, RUN_LOCK_FILE)), 'not even the lock');
  });
}

test('a run folder that is itself a link (runs on another disk): resume and eval work through it', async () => {
  const disk = join(tmp, 'disk');
  cpSync(runDir, join(disk, 'run'), { recursive: true });
  rmSync(join(disk, 'run', 'cells', 'lp-original-s0'), { recursive: true });
  symlinkSync(disk, join(tmp, 'runs-link'));
  const run = join(tmp, 'runs-link', 'run');
  await runExperiment({ config, backend: fakeBackend(), resume: run });
  assert.ok(existsSync(join(disk, 'run', 'cells', 'lp-original-s0', 'result.json')));
  await reevaluate(run, fakeBackend());
  assert.ok(existsSync(join(disk, 'run', 'results.json')));
  assert.not.ok(existsSync(join(disk, 'run', RUN_LOCK_FILE)));
});

test.after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});
test("a dead run's lock whose recorded cell worker still runs is taken over only once that worker has ended; a dead worker is no hindrance", async () => {
  const dir = mkdtempSync(join(tmp, 'workers-'));
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const plant = (workers: number[]) =>
    writeFileSync(
      join(dir, RUN_LOCK_FILE),
      JSON.stringify({
        pid: dead,
        host: hostname(),
        startedAt: '2026-01-01T00:00:00Z',
        command: 'x',
        workers,
      }),
    );
  // a worker still ending its epoch: a process that exits when told on stdin
  const child = spawn(process.execPath, ['-e', 'process.stdin.on("data", () => process.exit(0))'], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  await new Promise((r) => child.on('spawn', r));
  let exited = false;
  const gone = new Promise<void>((r) =>
    child.on('exit', () => {
      exited = true;
      r();
    }),
  );
  plant([child.pid!, dead]);
  let taken = false;
  const locking = lockRun(dir).then((l) => {
    taken = true;
    return l;
  });
  // the taker polls; give it several rounds: the worker still runs, so nothing may be taken
  await new Promise((r) => setTimeout(r, 800));
  assert.is(taken, false, 'not taken over while the worker runs');
  assert.is(
    JSON.parse(readFileSync(join(dir, RUN_LOCK_FILE), 'utf8')).pid,
    dead,
    'the lock is left as it was',
  );
  child.stdin!.end('stop');
  await gone;
  const lock = await locking;
  assert.ok(exited);
  assert.match(lock.tookOver ?? '', `process ${dead} is no longer running`);
  assert.is(JSON.parse(readFileSync(join(dir, RUN_LOCK_FILE), 'utf8')).pid, process.pid);
  // the holder records its own workers (atomically: no temp left beside it)
  lock.setWorkers([123, 456]);
  assert.equal(JSON.parse(readFileSync(join(dir, RUN_LOCK_FILE), 'utf8')).workers, [123, 456]);
  assert.equal(readdirSync(dir), [RUN_LOCK_FILE]);
  lock.release();
  assert.not.ok(existsSync(join(dir, RUN_LOCK_FILE)));
  // only dead workers recorded: taken over at once (no wait to let pass)
  plant([dead]);
  const again = await lockRun(dir, { workerWaitMs: 0 });
  assert.match(again.tookOver ?? '', `process ${dead} is no longer running`);
  again.release();
});

test("a dead run's worker that outlasts the wait: refused, naming its pid and saying to retry; the lock is left", async () => {
  const dir = mkdtempSync(join(tmp, 'workers-'));
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const child = spawn(process.execPath, ['-e', 'process.stdin.on("data", () => process.exit(0))'], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  await new Promise((r) => child.on('spawn', r));
  const record = JSON.stringify({
    pid: dead,
    host: hostname(),
    startedAt: '2026-01-01T00:00:00Z',
    command: 'x',
    workers: [child.pid],
  });
  writeFileSync(join(dir, RUN_LOCK_FILE), record);
  try {
    let err: unknown = null;
    await lockRun(dir, { workerWaitMs: 300 }).catch((e) => {
      err = e;
    });
    assert.instance(err, DataError);
    assert.is((err as DataError).reason, 'run-in-use');
    assert.match(
      (err as Error).message,
      `the run folder's holder, process ${dead}, is gone, but its cell workers (pid ${child.pid}) still run`,
    );
    assert.match((err as Error).message, 'retry once they have ended');
    assert.is(readFileSync(join(dir, RUN_LOCK_FILE), 'utf8'), record);
  } finally {
    child.kill();
  }
});

test.run();
