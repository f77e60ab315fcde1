/**
 * results.json and the reports made from it, written so that no moment shows the numbers of two
 * scorings: the old reports go first, then results.json, then the new reports. A process killed in
 * between (the OOM killer, a second Ctrl-C) leaves results.json without reports, which the next
 * `eval` or `run --resume` writes, never reports that disagree with it.
 */
import { join } from 'node:path';
import { writeJsonAtomic } from '../common/io.js';
import type { CacheLike } from '../experiment/backend.js';
import type { Results } from '../experiment/results.js';
import { type ReportFiles, removeReportFiles, writeReports } from './write.js';

/** Replaces a run's results.json and its reports; returns the reports written. */
export async function publishResults(
  runDir: string,
  results: Results,
  opts: { cache?: CacheLike } = {},
): Promise<ReportFiles> {
  removeReportFiles(runDir);
  writeJsonAtomic(join(runDir, 'results.json'), results);
  return writeReports(runDir, results, opts);
}
