/**
 * One grid cell in a process of its own (devices.ts): reads the job from CXRMASK_CELL_JOB, opens the
 * run's config and cache, and trains the cell on its device into the run folder.
 */
import { join } from 'node:path';
import { readJson } from '../common/io.js';
import { realBackend } from '../experiment/backend-real.js';
import { cellId, trainedCells } from '../experiment/cells.js';
import { parseConfig } from '../experiment/config.js';
import { Grid } from '../experiment/grid.js';
import { CELL_JOB_VARIABLE, parseCellJob } from './cell-job.js';

const job = parseCellJob(process.env[CELL_JOB_VARIABLE]);
const config = parseConfig(readJson<unknown>(join(job.runDir, 'config.json')), `${job.runDir}/config.json`);
const cell = trainedCells(config).find((c) => cellId(c.setup, c.train, c.seed) === job.cell);
if (!cell) throw new Error(`cell-worker: ${job.cell} is not a cell of ${job.runDir}`);
const backend = await realBackend();
if (config.model.threads && backend.setThreads) backend.setThreads(config.model.threads);
const cache = await backend.openCache(job.cacheDir);
try {
  const grid = new Grid({ config, backend, runDir: job.runDir, cache, device: job.device });
  await grid.trainCell(cell.setup, cell.train, cell.seed);
} finally {
  cache.close?.();
}
