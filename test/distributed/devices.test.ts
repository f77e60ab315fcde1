/**
 * `run --devices`: what it refuses before any work (a device the machine lacks, a launcher's ranks),
 * one device taken as the run's device, and a stop: the first SIGTERM or Ctrl-C stops the cell
 * workers at a step boundary (exit 130, resumable), a second ends them with the run.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { z } from 'zod';
import { runCommand } from '../../ts/cli/run-command.js';
import { ConfigError, DataError, InterruptedError, UsageError } from '../../ts/common/errors.js';
import { parseOptions } from '../../ts/common/options.js';
import { exitCodeOf } from '../../ts/common/report-error.js';
import { cellFailure } from '../../ts/distributed/cell-job.js';
import {
  cellExitError,
  checkDevices,
  parseDevices,
  runCellsOnDevices,
} from '../../ts/distributed/devices.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import type { Backend } from '../../ts/experiment/backend.js';
import { type ConfigInput, parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';
import { lockRun } from '../../ts/experiment/run-lock.js';
import type { GroupLike } from '../../ts/model/process-group.js';
import { spawnTs } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-devices-'));
let backend: Backend;

// fine-tuning only (no zero-shot, no linear probe): two cells, each a worker of its own
const input = (name: string, ftEpochs: number, device: 'cpu' | 'cuda' = 'cpu'): ConfigInput => ({
  name,
  runsDir: join(tmp, 'runs'),
  data: {
    cache: join(tmp, 'cache'),
    root: join(tmp, 'data', 'mimic'),
    chexmask: join(tmp, 'data', 'chexmask', 'MIMIC-CXR-JPG.csv'),
  },
  model: { dir: 'models/tiny', device, threads: 1 },
  seeds: [0],
  zeroshot: { enabled: false },
  linearProbe: { enabled: false },
  finetune: { epochs: ftEpochs, batchSize: 4, lrEncoder: 1e-3, lrHead: 1e-2, maxTrainImages: 16 },
  metrics: { bootstrap: 10 },
});

const configFile = (name: string, ftEpochs: number) => {
  const path = join(tmp, `${name}.json`);
  writeFileSync(path, JSON.stringify(input(name, ftEpochs)));
  return path;
};

test.before(async () => {
  const { realBackend, prepareData } = await import('../../ts/experiment/backend-real.js');
  backend = await realBackend();
  const { synthesize } = await import('../../ts/synth/synthesize.js');
  await synthesize({ out: join(tmp, 'data'), n: 60, seed: 5, width: 128, height: 128 });
  await prepareData(parseConfig(input('prep', 1)), { log: () => {} });
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const runsNamed = (name: string) =>
  existsSync(join(tmp, 'runs')) ? readdirSync(join(tmp, 'runs')).filter((d) => d.endsWith(`-${name}`)) : [];

test('every device is checked against the machine: a CUDA index it lacks is a ConfigError naming it', () => {
  checkDevices(parseDevices('cpu,cpu'), 0);
  checkDevices(parseDevices('cuda:0,cuda:1,cpu'), 2);
  for (const [spec, count] of [
    ['cuda', 0],
    ['cpu,cuda:2', 2],
    ['cuda:9', 1],
  ] as const) {
    try {
      checkDevices(parseDevices(spec), count);
      assert.unreachable(`${spec} on ${count} CUDA devices was taken`);
    } catch (e) {
      assert.instance(e, ConfigError);
      assert.match((e as Error).message, /--devices: cuda(:\d)? is not a device of this machine/);
    }
  }
  assert.throws(
    () => parseDevices('gpu'),
    (e: Error) => e instanceof ConfigError && /'gpu'/.test(e.message),
  );
});

/** `cxrmask run …` in a subprocess, to its end. */
async function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnTs('ts/cli/main.ts', ['run', '--progress', 'false', ...args], env);
  const end = await r.exited;
  return { code: end.code, err: r.stderr() };
}

test('run --devices with a device this machine lacks: exit 2 before the data step', async () => {
  // no CUDA on the test machines: cuda:9 is never there
  const r = await cli(['--config', configFile('nodev', 1), '--devices', 'cuda:9,cpu']);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /error: --devices: cuda:9 is not a device of this machine/);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace');
  assert.equal(runsNamed('nodev'), [], 'no run folder');
});

test('run --devices under --nproc, torchrun or Slurm: exit 2 before any rank starts', async () => {
  const cfg = configFile('ranks', 1);
  const nproc = await cli(['--config', cfg, '--devices', 'cpu,cpu', '--nproc', '2']);
  assert.is(nproc.code, 2, nproc.err);
  assert.match(nproc.err, /error: --devices does not combine with --nproc, torchrun or Slurm/);
  // as a rank of a torchrun job: refused before the rendezvous
  const torchrun = await cli(['--config', cfg, '--devices', 'cpu'], {
    WORLD_SIZE: '2',
    RANK: '1',
    LOCAL_RANK: '1',
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: '1',
    // bounds the wait for a rank 0 that never comes, should the refusal not come first
    CXRMASK_DIST_TIMEOUT: '5',
  });
  assert.is(torchrun.code, 2, torchrun.err);
  assert.match(torchrun.err, /--devices does not combine/);
  const slurm = await cli(['--config', cfg, '--devices', 'cpu,cpu'], {
    SLURM_NTASKS: '2',
    SLURM_PROCID: '1',
    SLURM_LOCALID: '1',
    WORLD_SIZE: '',
  });
  assert.is(slurm.code, 2, slurm.err);
  assert.equal(runsNamed('ranks'), [], 'no run folder');
});

test('runExperiment refuses devices with a group (every rank would train every cell)', async () => {
  const group = { rank: 0, worldSize: 2 } as unknown as GroupLike;
  try {
    await runExperiment({
      config: parseConfig(input('lib', 1)),
      backend,
      dist: group,
      devices: ['cpu', 'cpu'],
    });
    assert.unreachable('devices and dist were taken together');
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.match((e as Error).message, /devices and dist do not combine/);
  }
  assert.equal(runsNamed('lib'), []);
});

test('one --devices entry is the run’s device (config.model.device says cuda)', async () => {
  const { runDir } = await runExperiment({
    config: parseConfig(input('one', 1, 'cuda')),
    backend,
    devices: ['cpu'],
  });
  const results = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
  assert.is(results.run.device, 'cpu');
  assert.ok(existsSync(join(runDir, 'cells', 'jft-masked-s0', 'result.json')));
});

/** `body` run as a command: its exit code and what it printed (the run's own stderr only). */
async function asCommand(body: () => Promise<void>): Promise<{ code: number; err: string }> {
  const before = process.exitCode;
  const write = process.stderr.write;
  let err = '';
  process.exitCode = undefined;
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    await runCommand(body);
    return { code: Number(process.exitCode ?? 0), err };
  } finally {
    process.stderr.write = write;
    process.exitCode = before;
  }
}

test('a cell worker’s user-fixable error comes back as its class with the cell’s message: exit 2, as without --devices', async () => {
  const runDir = join(tmp, 'runs', 'broken-cells');
  mkdirSync(runDir, { recursive: true });
  const cells = ['jft-masked-s0'];
  const missingCache = join(tmp, 'no-such-cache');
  // a config the worker cannot read: a ConfigError naming the file and the field
  writeFileSync(join(runDir, 'config.json'), JSON.stringify({ ...input('broken', 1), seeds: 'zero' }));
  const config = await asCommand(() =>
    runCellsOnDevices({ runDir, cacheDir: join(tmp, 'cache'), devices: ['cpu'], cells }),
  );
  assert.is(config.code, 2, config.err);
  assert.match(config.err, /^error: invalid .*broken-cells\/config\.json:\n\s+- seeds: /);
  assert.not.match(config.err, /exit code|failed/);
  // a cache folder that is not there: the DataError keeps its reason and where
  writeFileSync(join(runDir, 'config.json'), JSON.stringify(input('broken', 1)));
  try {
    await runCellsOnDevices({ runDir, cacheDir: missingCache, devices: ['cpu', 'cpu'], cells });
    assert.unreachable('the cell did not fail');
  } catch (e) {
    assert.instance(e, DataError);
    assert.is((e as Error).message, `${missingCache}: cache directory does not exist`);
    assert.ok(
      (e as DataError).reason.length > 0 && (e as DataError).reason !== 'unknown',
      (e as DataError).reason,
    );
  }
});

test('how a worker ended decides the error: a clean stop, a kill, a reported error, a crash', () => {
  const label = 'cell jft-masked-s0 on cpu';
  const stopped = cellExitError(label, 130, null, null);
  assert.instance(stopped, InterruptedError);
  assert.is(stopped.message, `${label} stopped at a step boundary`);
  const killed = cellExitError(label, null, 'SIGTERM', null);
  assert.instance(killed, InterruptedError);
  assert.is(killed.message, `${label} killed by SIGTERM`);
  const usage = cellExitError(label, 2, null, { kind: 'cell-failure', name: 'UsageError', message: 'bad' });
  assert.instance(usage, UsageError);
  assert.is(usage.message, 'bad');
  // a library option schema's RangeError (a ZodError as cause): exit 2 and the CLI's words, as
  // without --devices, both from the worker's own verdict
  const schema = z.object({ lr: z.number().positive() }).strict();
  let optionErr: Error | undefined;
  try {
    parseOptions(schema, { lr: -1 }, 'train');
  } catch (e) {
    optionErr = e as Error;
  }
  assert.instance(optionErr, RangeError);
  const sent = cellFailure(optionErr as Error);
  assert.is(sent.exitCode, 2);
  const option = cellExitError(label, 2, null, JSON.parse(JSON.stringify(sent)));
  assert.instance(option, UsageError);
  assert.is(option.message, `invalid option: ${(optionErr as Error).message}`);
  assert.is(exitCodeOf(option), 2);
  const typeErr = cellExitError(label, 2, null, {
    kind: 'cell-failure',
    name: 'TypeError',
    message: "invalid option: unknown train option 'x'",
    exitCode: 2,
  });
  assert.instance(typeErr, UsageError);
  assert.is(typeErr.message, "invalid option: unknown train option 'x'");
  const bug = cellExitError(label, 1, null, {
    kind: 'cell-failure',
    name: 'NativeError',
    message: 'torch',
    exitCode: 1,
  });
  assert.not.instance(bug, DataError);
  assert.is(bug.message, `${label} failed: torch`);
  assert.is(cellExitError(label, null, 'SIGKILL', null).message, `${label} failed (SIGKILL)`);
});

test('executeRun refuses devices under a launcher with the same words as the CLI', async () => {
  const { executeRun } = await import('../../ts/cli/run.js');
  const saved = { ...process.env };
  Object.assign(process.env, { WORLD_SIZE: '2', RANK: '1', LOCAL_RANK: '1' });
  try {
    await executeRun(parseConfig(input('exec', 1)), { devices: ['cpu'] });
    assert.unreachable('devices were taken under torchrun');
  } catch (e) {
    assert.instance(e, UsageError);
    assert.is(
      (e as Error).message,
      '--devices does not combine with --nproc, torchrun or Slurm: cells side by side on several devices, or each cell on all ranks',
    );
  } finally {
    for (const k of ['WORLD_SIZE', 'RANK', 'LOCAL_RANK']) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  assert.equal(runsNamed('exec'), []);
});

/** Cell workers still alive whose job is in this test's folder. */
function liveWorkers(): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const env = readFileSync(`/proc/${p}/environ`, 'utf8');
      if (env.includes('CXRMASK_CELL_JOB=') && env.includes(tmp)) pids.push(Number(p));
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return pids;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `run --devices cpu,cpu` on a long grid, in a process group of its own, once both workers train. */
async function startLongRun(name: string): Promise<Running> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'ts/cli/main.ts',
      'run',
      '--progress',
      'false',
      '--config',
      configFile(name, 500),
      '--devices',
      'cpu,cpu',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  // a watchdog, not a timing: a run that ignores the signal would otherwise train for minutes
  let watchdog: NodeJS.Timeout | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(watchdog);
      resolve(code);
    });
  });
  const startWatchdog = () => {
    watchdog ??= setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
  };
  // both workers at their cell (so their stop handler is in place), then into their first epochs
  const cellsDir = () => (runsNamed(name).length ? join(tmp, 'runs', runsNamed(name)[0]!, 'cells') : '');
  while (liveWorkers().length < 2 || !existsSync(cellsDir()) || readdirSync(cellsDir()).length < 2) {
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  await sleep(1500);
  return {
    child,
    err: () => err,
    exited,
    signal: (sig) => {
      startWatchdog();
      process.kill(sig === 'SIGINT' ? -child.pid! : child.pid!, sig);
    },
  };
}

interface Running {
  child: ChildProcess;
  err: () => string;
  exited: Promise<number | null>;
  /** SIGTERM to the run, or SIGINT to its process group (Ctrl-C); the watchdog starts. */
  signal: (sig: 'SIGTERM' | 'SIGINT') => void;
}

test('run --devices: one SIGTERM stops the workers at a step boundary; exit 130 with the resume hint', async () => {
  const run = await startLongRun('term');
  run.signal('SIGTERM');
  assert.is(await run.exited, 130, run.err());
  // a worker that stopped at a step boundary, not one the signal killed mid-write
  assert.match(
    run.err(),
    /interrupted: cell \S+ on cpu stopped at a step boundary\. Resume with: cxrmask run --resume .*-term/,
    run.err(),
  );
  assert.not.match(run.err(), /failed|killed/);
  const dir = join(tmp, 'runs', runsNamed('term')[0]!);
  assert.not.ok(existsSync(join(dir, 'results.json')), 'the grid did not run to its end');
  assert.equal(liveWorkers(), [], 'no worker outlives the run');
  const cells = readdirSync(join(dir, 'cells'));
  assert.ok(cells.length > 0);
  for (const c of cells)
    assert.equal(
      readdirSync(join(dir, 'cells', c)).filter((f) => f.includes('.tmp-')),
      [],
      `no half-written file in ${c}`,
    );
  // what a --resume starts from: each state.json names a checkpoint that is there
  for (const c of cells) {
    const statePath = join(dir, 'cells', c, 'state.json');
    if (!existsSync(statePath)) continue;
    const st = JSON.parse(readFileSync(statePath, 'utf8')) as { lastCheckpoint: string | null };
    if (st.lastCheckpoint)
      assert.ok(existsSync(join(dir, 'cells', c, st.lastCheckpoint)), `${c}: ${st.lastCheckpoint}`);
  }
});

test('run --devices: Ctrl-C (SIGINT to the whole process group) ends as interrupted, not as a failed cell', async () => {
  const run = await startLongRun('ctrlc');
  run.signal('SIGINT');
  assert.is(await run.exited, 130, run.err());
  assert.match(run.err(), /interrupted: .*Resume with: cxrmask run --resume .*-ctrlc/);
  assert.not.match(run.err(), /failed/);
  assert.equal(liveWorkers(), []);
});

test('run --devices: workers whose run is SIGKILLed stop at a step boundary, and a resume takes the stale lock', async () => {
  const run = await startLongRun('orphan');
  const dir = join(tmp, 'runs', runsNamed('orphan')[0]!);
  const workers = liveWorkers();
  assert.is(workers.length, 2);
  // the run's lock records its workers
  const record = JSON.parse(readFileSync(join(dir, 'run.lock'), 'utf8')) as {
    pid: number;
    workers: number[];
  };
  assert.is(record.pid, run.child.pid);
  assert.equal([...record.workers].sort(), [...workers].sort());
  // as the OOM killer does: the run gets no chance to tell its workers
  process.kill(run.child.pid!, 'SIGKILL');
  await run.exited;
  // what the next --resume does first, at once: the killed run's lock names a pid no longer running,
  // but it is taken over only once the workers, which may still end an epoch, are gone
  const lock = await lockRun(dir);
  const left = liveWorkers();
  for (const pid of left) process.kill(pid, 'SIGKILL');
  assert.equal(left, [], 'no worker outlives its run');
  // they went through the stop path (the workers share the run's stderr), not a crash
  assert.is(
    run.err().match(/the run that started it is gone; stopping at the next step boundary/g)?.length,
    2,
    run.err(),
  );
  assert.not.match(run.err(), /error:/);
  for (const c of readdirSync(join(dir, 'cells'))) {
    const files = readdirSync(join(dir, 'cells', c));
    assert.equal(
      files.filter((f) => f.includes('.tmp-')),
      [],
      `no half-written file in ${c}`,
    );
    const statePath = join(dir, 'cells', c, 'state.json');
    if (!existsSync(statePath)) continue;
    const st = JSON.parse(readFileSync(statePath, 'utf8')) as { lastCheckpoint: string | null };
    if (st.lastCheckpoint) assert.ok(files.includes(st.lastCheckpoint), `${c}: ${st.lastCheckpoint}`);
  }
  assert.match(lock.tookOver ?? '', new RegExp(`process ${run.child.pid} is no longer running`));
  lock.release();
});

test('run --devices: a second signal exits now and takes the workers with it', async () => {
  const run = await startLongRun('twice');
  run.signal('SIGTERM');
  await sleep(50);
  run.signal('SIGTERM');
  assert.is(await run.exited, 130, run.err());
  assert.match(run.err(), /forced exit/);
  await sleep(300);
  assert.equal(liveWorkers(), [], 'no orphaned worker goes on writing');
});

test.run();
