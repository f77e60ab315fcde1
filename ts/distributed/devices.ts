/**
 * `cxrmask run --devices cpu,cpu` / `cuda:0,cuda:1,…`: independent grid cells side by side, one per
 * device. Each cell runs in a process of its own (ts/distributed/cell-worker.ts) that trains it into
 * the shared run folder exactly as the sequential loop would (same seed, same batches, same
 * checkpoints), so the results do not depend on which device or in what order cells ran; the calling
 * process then finds every cell finished and assembles results.json as usual. A device takes the next
 * waiting cell as soon as its previous one ends (linear probes are short, fine-tuning long).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, InterruptedError } from '../common/errors.js';
import { type StopSignal, trackChild } from '../common/interrupt.js';
import { EXIT_INTERRUPTED } from '../common/report-error.js';
import { CELL_JOB_VARIABLE, type CellFailure, type CellJob, cellError, isCellFailure } from './cell-job.js';

/** `cpu,cpu` / `cuda:0,cuda:1` → the device list (validated). */
export function parseDevices(spec: string): string[] {
  const list = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const d of list)
    if (!/^(cpu|cuda|cuda:\d+)$/.test(d))
      throw new ConfigError(`--devices: '${d}' is not a device (cpu, cuda or cuda:N)`);
  if (!list.length) throw new ConfigError('--devices: no device given');
  return list;
}

/**
 * Refuses a device this machine does not have (`cudaDevices`: the addon's CUDA device count), so a
 * wrong index fails before the data step and the feature pass, not in a cell worker afterwards.
 * @throws {ConfigError} naming the device and what the machine has.
 */
export function checkDevices(devices: readonly string[], cudaDevices: number): void {
  for (const d of devices) {
    if (d === 'cpu') continue;
    const index = d === 'cuda' ? 0 : Number(d.slice('cuda:'.length));
    if (index >= cudaDevices)
      throw new ConfigError(
        `--devices: ${d} is not a device of this machine (${cudaDevices ? `CUDA devices: cuda:0 to cuda:${cudaDevices - 1}` : 'no CUDA device; the addon runs on cpu only'})`,
      );
  }
}

// The worker next to this module: .ts under tsx (tests, development), .js in dist/.
const workerPath = () => {
  const self = fileURLToPath(import.meta.url);
  return self.slice(0, -extname(self).length).replace(/devices$/, 'cell-worker') + extname(self);
};

/**
 * How a worker ended, as an error: exit 130 (EXIT_INTERRUPTED, the CLI's for Ctrl-C) stopped at a
 * step boundary and SIGINT/SIGTERM killed it (an InterruptedError each, the message saying which: a
 * kill may have cut a write short); an error it reported is rethrown as its class (cell-job.ts
 * cellError), so `--devices` exits as one process.
 */
export function cellExitError(
  label: string,
  code: number | null,
  signal: NodeJS.Signals | null,
  failure: CellFailure | null,
): Error {
  if (code === EXIT_INTERRUPTED) return new InterruptedError(`${label} stopped at a step boundary`);
  if (signal === 'SIGINT' || signal === 'SIGTERM')
    return new InterruptedError(`${label} killed by ${signal}`);
  if (failure) return cellError(failure, label);
  return new Error(`${label} failed (${signal ?? `exit code ${code}`})`);
}

function runCell(job: CellJob, onSpawn: (child: ChildProcess) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, workerPath()], {
      env: { ...process.env, [CELL_JOB_VARIABLE]: JSON.stringify(job) },
      // the channel carries a failed cell's error back (cell-worker.ts)
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    trackChild(child);
    onSpawn(child);
    let failure: CellFailure | null = null;
    child.on('message', (m) => {
      if (isCellFailure(m)) failure = m;
    });
    child.on('error', reject);
    // 'close', not 'exit': it comes after every message on the channel
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(cellExitError(`cell ${job.cell} on ${job.device}`, code, signal, failure));
    });
  });
}

/**
 * Trains `cells` (ids from grid.ts cellId) with at most one process per entry of `devices`. Rejects
 * with the first failure after stopping the cells still running (their checkpoints stay consistent:
 * a later `--resume` continues them). When `signal` asks to stop, no cell is started any more, the
 * running workers are told to stop at their next step boundary (SIGTERM), and it rejects with an
 * InterruptedError once they have.
 */
export async function runCellsOnDevices(o: {
  runDir: string;
  cacheDir: string;
  devices: readonly string[];
  cells: readonly string[];
  signal?: StopSignal;
  /** The pids of the workers now running, after each start and end of one. */
  onWorkers?: (pids: number[]) => void;
  onCell?: (cell: string, device: string, phase: 'start' | 'done') => void;
}): Promise<void> {
  const queue = [...o.cells];
  const running = new Set<ChildProcess>();
  const reportWorkers = () =>
    o.onWorkers?.([...running].flatMap((c) => (c.pid === undefined ? [] : [c.pid])));
  let failed: Error | null = null;
  const stopAll = () => {
    for (const c of running) c.kill('SIGTERM');
  };
  // The workers are separate processes, told once. What is watched is the stop flag, not the workers
  // (their ends come as 'close' events, runCell): a StopSignal is a plain flag that whoever stops the
  // run sets (stopOnSignals, a caller's own code) and loops read at step boundaries, with no event
  // to listen to, so this loop reads it too. Each lane's next cell is refused on the flag itself.
  const signal = o.signal;
  const watch = signal
    ? setInterval(() => {
        if (signal.stop) {
          clearInterval(watch);
          stopAll();
        }
      }, 200)
    : undefined;
  const lane = async (device: string) => {
    while (queue.length && !failed && !o.signal?.stop) {
      const cell = queue.shift()!;
      o.onCell?.(cell, device, 'start');
      let child: ChildProcess | null = null;
      try {
        await runCell({ runDir: o.runDir, cacheDir: o.cacheDir, device, cell }, (c) => {
          child = c;
          running.add(c);
          reportWorkers();
        });
        o.onCell?.(cell, device, 'done');
      } catch (e) {
        if (!failed) {
          failed = e as Error;
          stopAll();
        }
      } finally {
        if (child && running.delete(child)) reportWorkers();
      }
    }
  };
  try {
    await Promise.all(o.devices.map(lane));
  } finally {
    clearInterval(watch);
  }
  if (failed) throw failed;
  if (o.signal?.stop && queue.length) throw new InterruptedError(`stopped before ${queue.join(', ')}`);
}
