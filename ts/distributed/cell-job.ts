/**
 * The job a cell worker runs, as the launcher (devices.ts) hands it over in CXRMASK_CELL_JOB: read
 * back strictly, so a worker started by hand or with a damaged variable says what is wrong with it.
 */
import { z } from 'zod';
import { formatIssues } from '../common/options.js';
import type { CellJob } from './devices.js';

/** The environment variable that carries the job, as JSON. */
export const CELL_JOB_VARIABLE = 'CXRMASK_CELL_JOB';

const CellJobSchema = z.object({
  runDir: z.string().min(1),
  cacheDir: z.string().min(1),
  device: z.string().min(1),
  cell: z.string().min(1),
});

/** The job in `raw` (the variable's value); an Error naming the variable when it is unset, not JSON or not a job. */
export function parseCellJob(raw: string | undefined): CellJob {
  const v = CELL_JOB_VARIABLE;
  if (raw === undefined || raw === '')
    throw new Error(`cell-worker: ${v} is not set (the worker is started by ts/distributed/devices.ts)`);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw new Error(`cell-worker: ${v} is not valid JSON (${(e as Error).message}): ${raw.slice(0, 200)}`);
  }
  const r = CellJobSchema.safeParse(value);
  if (!r.success)
    throw new Error(
      `cell-worker: ${v} is not a cell job {runDir, cacheDir, device, cell}:\n${formatIssues(r.error)}`,
    );
  return r.data;
}
