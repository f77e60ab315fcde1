/**
 * `run --devices`: what it refuses before any work (a device the machine lacks, a launcher's ranks),
 * one device taken as the run's device, and a stop: the first SIGTERM or Ctrl-C stops the cell
 * workers at a step boundary (exit 130, resumable), a second ends them with the run.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { checkDevices, parseDevices } from '../../ts/distributed/devices.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import type { Backend } from '../../ts/experiment/backend.js';
import { type ConfigInput, parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';
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
  while (liveWorkers().length < 2) {
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  // into their first epochs (a signal before the worker's handler is installed is covered too)
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
  assert.match(run.err(), /interrupted: .*Resume with: cxrmask run --resume .*-term/);
  assert.not.match(run.err(), /failed/);
  const dir = join(tmp, 'runs', runsNamed('term')[0]!);
  assert.not.ok(existsSync(join(dir, 'results.json')), 'the grid did not run to its end');
  assert.equal(liveWorkers(), [], 'no worker outlives the run');
});

test('run --devices: Ctrl-C (SIGINT to the whole process group) ends as interrupted, not as a failed cell', async () => {
  const run = await startLongRun('ctrlc');
  run.signal('SIGINT');
  assert.is(await run.exited, 130, run.err());
  assert.match(run.err(), /interrupted: .*Resume with: cxrmask run --resume .*-ctrlc/);
  assert.not.match(run.err(), /failed/);
  assert.equal(liveWorkers(), []);
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
