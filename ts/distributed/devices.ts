/**
 * `cxrmask run --devices cpu,cpu` / `cuda:0,cuda:1,…`: independent grid cells side by side, one per
 * device. Each cell runs in a process of its own (ts/distributed/cell-worker.ts) that trains it into
 * the shared run folder exactly as the sequential loop would (same seed, same batches, same
 * checkpoints), so the results do not depend on which device or in what order cells ran; the calling
 * process then finds every cell finished and assembles results.json as usual. A device takes the next
 * waiting cell as soon as its previous one ends (linear probes are short, fine-tuning long).
 */
import { spawn } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CellJob {
  runDir: string;
  cacheDir: string;
  device: string;
  cell: string;
}

/** `cpu,cpu` / `cuda:0,cuda:1` → the device list (validated). */
export function parseDevices(spec: string): string[] {
  const list = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const d of list)
    if (!/^(cpu|cuda|cuda:\d+)$/.test(d))
      throw new RangeError(`--devices: '${d}' is not a device (cpu, cuda or cuda:N)`);
  if (!list.length) throw new RangeError('--devices: no device given');
  return list;
}

// The worker next to this module: .ts under tsx (tests, development), .js in dist/.
const workerPath = () => {
  const self = fileURLToPath(import.meta.url);
  return self.slice(0, -extname(self).length).replace(/devices$/, 'cell-worker') + extname(self);
};

function runCell(job: CellJob, onExit: (kill: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, workerPath()], {
      env: { ...process.env, CXRMASK_CELL_JOB: JSON.stringify(job) },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    onExit(() => child.kill('SIGTERM'));
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`cell ${job.cell} on ${job.device} failed (${signal ?? `exit code ${code}`})`)),
    );
  });
}

/**
 * Trains `cells` (ids from grid.ts cellId) with at most one process per entry of `devices`. Rejects
 * with the first failure after stopping the cells still running (their checkpoints stay consistent:
 * a later `--resume` continues them).
 */
export async function runCellsOnDevices(o: {
  runDir: string;
  cacheDir: string;
  devices: readonly string[];
  cells: readonly string[];
  onCell?: (cell: string, device: string, phase: 'start' | 'done') => void;
}): Promise<void> {
  const queue = [...o.cells];
  const kills = new Set<() => void>();
  let failed: Error | null = null;
  const lane = async (device: string) => {
    while (queue.length && !failed) {
      const cell = queue.shift()!;
      o.onCell?.(cell, device, 'start');
      let kill: (() => void) | null = null;
      try {
        await runCell({ runDir: o.runDir, cacheDir: o.cacheDir, device, cell }, (k) => {
          kill = k;
          kills.add(k);
        });
        o.onCell?.(cell, device, 'done');
      } catch (e) {
        if (!failed) {
          failed = e as Error;
          for (const k of kills) k();
        }
      } finally {
        if (kill) kills.delete(kill);
      }
    }
  };
  await Promise.all(o.devices.map(lane));
  if (failed) throw failed;
}
