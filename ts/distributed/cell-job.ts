/**
 * The job a cell worker runs, as the launcher (devices.ts) hands it over in CXRMASK_CELL_JOB: read
 * back strictly, so a worker started by hand or with a damaged variable says what is wrong with it.
 */
import { z } from 'zod';
import { ConfigError, DataError, type DataErrorWhere, UsageError } from '../common/errors.js';
import { formatIssues } from '../common/options.js';
import { errorText, exitCodeOf } from '../common/report-error.js';

/** One cell for one worker: train `cell` of the run in `runDir` on `device`, from the cache in `cacheDir`. */
export interface CellJob {
  runDir: string;
  cacheDir: string;
  device: string;
  cell: string;
}

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

/** A worker's error as it tells its parent (over the IPC channel), which rethrows it: cellError. */
export interface CellFailure {
  kind: 'cell-failure';
  name: string;
  /** What the worker would print after `error: ` (report-error.ts errorText). */
  message: string;
  /** The exit code the worker gives it (exitCodeOf): 2 when the user can fix it. */
  exitCode?: number;
  stack?: string;
  /** A DataError's reason and where. */
  reason?: string;
  where?: DataErrorWhere;
}

/** What a worker sends its parent about `err`. */
export function cellFailure(err: Error): CellFailure {
  const f: CellFailure = {
    kind: 'cell-failure',
    name: err.name,
    message: errorText(err),
    exitCode: exitCodeOf(err),
  };
  if (err.stack) f.stack = err.stack;
  if (err instanceof DataError) Object.assign(f, { reason: err.reason, where: err.where });
  return f;
}

export const isCellFailure = (m: unknown): m is CellFailure =>
  typeof m === 'object' && m !== null && (m as CellFailure).kind === 'cell-failure';

/**
 * The error the parent rethrows for a failed cell. What the user can fix (DataError, ConfigError,
 * UsageError, or any error the worker gave exit code 2) comes back as its own class (a UsageError for
 * the last) with the cell's message, so the run exits and reads as the same error without `--devices`
 * would; anything else becomes an Error naming the cell and device.
 */
export function cellError(f: CellFailure, label: string): Error {
  let e: Error;
  if (f.name === 'DataError') {
    // the message already starts with `where`: not formatted again
    e = new DataError(f.reason ?? 'unknown', f.message);
    Object.assign(e, { where: f.where ?? {} });
  } else if (f.name === 'ConfigError') e = new ConfigError(f.message);
  else if (f.name === 'UsageError') e = new UsageError(f.message);
  // another class the worker judged user-fixable (an option schema's TypeError/RangeError): its
  // words, already as the CLI prints them, and its exit code
  else if (f.exitCode === 2) e = new UsageError(f.message);
  else e = new Error(`${label} failed: ${f.message}`);
  if (f.stack) e.stack = f.stack;
  return e;
}
