/**
 * One grid cell in a process of its own (devices.ts): reads the job from CXRMASK_CELL_JOB, opens the
 * run's config and cache, and trains the cell on its device into the run folder. SIGTERM (sent by
 * the parent when it is asked to stop) stops at the next step boundary with exit code 130; a second
 * one exits now.
 */
import { join } from 'node:path';
import { InterruptedError } from '../common/errors.js';
import { stopOnSignals } from '../common/interrupt.js';
import { readJson } from '../common/io.js';
import { realBackend } from '../experiment/backend-real.js';
import { cellId, trainedCells } from '../experiment/cells.js';
import { parseConfig } from '../experiment/config.js';
import { Grid } from '../experiment/grid.js';
import { CELL_JOB_VARIABLE, parseCellJob } from './cell-job.js';
import { CELL_STOPPED_CODE } from './devices.js';

const signal = stopOnSignals(['SIGTERM']);
// Ctrl-C reaches the whole terminal's process group: the parent alone decides, and tells the worker
process.on('SIGINT', () => {});

async function main(): Promise<void> {
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

try {
  await main();
} catch (e) {
  if (e instanceof InterruptedError) process.exitCode = CELL_STOPPED_CODE;
  else {
    // one line, as the CLI prints its errors; the parent then names the cell and device
    process.stderr.write(`error: ${(e as Error).message}\n`);
    if (process.env['CXRMASK_DEBUG']) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = 1;
  }
}
