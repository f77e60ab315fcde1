/**
 * One grid cell in a process of its own (devices.ts): reads the job from CXRMASK_CELL_JOB, opens the
 * run's config and cache, and trains the cell on its device into the run folder. SIGTERM (sent by
 * the parent when it is asked to stop) stops at the next step boundary with exit code 130; a second
 * one exits now. The parent's death (its channel closes, even after a SIGKILL that let it tell no one)
 * stops it the same way, so no orphan goes on writing into a run folder a later `--resume` takes
 * over. Any other error exits with the code the CLI gives it (common/report-error.ts) and is
 * handed to the parent over the IPC channel, which rethrows it (cell-job.ts cellError): it is printed
 * once, by the run. Started without a channel (by hand), the worker prints it itself.
 */
import { join } from 'node:path';
import { dropOutputWhenClosed } from '../common/closed-output.js';
import { InterruptedError } from '../common/errors.js';
import { stopOnParentExit, stopOnSignals } from '../common/interrupt.js';
import { readJson } from '../common/io.js';
import { exitCodeOf, reportError } from '../common/report-error.js';
import { CELL_JOB_VARIABLE, cellFailure, parseCellJob } from './cell-job.js';

// a closed log pipe (the parent's stdio, shared) must not end the cell partway
dropOutputWhenClosed();
// before the grid and the addon load (seconds on a busy machine): a stop asked meanwhile is a
// stop at the first step boundary, not a kill
const signal = stopOnSignals(['SIGTERM']);
const unwatchParent = stopOnParentExit(signal, () => {
  // the terminal or pipe the parent shared may be gone too: a failed write must not end this
  // process before it reaches the step boundary
  dropOutputWhenClosed({ anyError: true });
  process.stderr.write(
    `cell-worker ${process.pid}: the run that started it is gone; stopping at the next step boundary\n`,
  );
});
// Ctrl-C reaches the whole terminal's process group: the parent alone decides, and tells the worker
process.on('SIGINT', () => {});

async function main(): Promise<void> {
  const [{ realBackend }, { cellId, trainedCells }, { parseConfig }, { Grid }] = await Promise.all([
    import('../experiment/backend-real.js'),
    import('../experiment/cells.js'),
    import('../experiment/config.js'),
    import('../experiment/grid.js'),
  ]);
  const job = parseCellJob(process.env[CELL_JOB_VARIABLE]);
  const config = parseConfig(readJson<unknown>(join(job.runDir, 'config.json')), `${job.runDir}/config.json`);
  const cell = trainedCells(config).find((c) => cellId(c.setup, c.train, c.seed) === job.cell);
  if (!cell) throw new Error(`cell-worker: ${job.cell} is not a cell of ${job.runDir}`);
  const backend = await realBackend();
  if (config.model.threads && backend.setThreads) backend.setThreads(config.model.threads);
  const cache = await backend.openCache(job.cacheDir);
  try {
    const grid = new Grid({ config, backend, runDir: job.runDir, cache, device: job.device, signal });
    await grid.trainCell(cell.setup, cell.train, cell.seed);
  } finally {
    cache.close?.();
  }
}

/** Hands `err` to the parent; false when there is no channel or it is closed. */
function tellParent(err: Error): Promise<boolean> {
  const send = process.send?.bind(process);
  if (!send || !process.connected) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      send(cellFailure(err), undefined, {}, (e: Error | null) => resolve(!e));
    } catch {
      resolve(false);
    }
  });
}

try {
  await main();
} catch (e) {
  const err = e as Error;
  // a stop at a step boundary (exit 130) needs no word: the parent asked for it
  if (!(err instanceof InterruptedError) && !(await tellParent(err))) reportError(err);
  process.exitCode = exitCodeOf(err);
} finally {
  unwatchParent();
  // the channel would keep this process alive
  if (process.connected) process.disconnect();
}
