/**
 * results.json and the reports made from it, written so that no moment shows the numbers of two
 * scorings: the old reports go first, then results.json, then the new reports. A process killed in
 * between (the OOM killer, a second Ctrl-C) leaves results.json without reports, which the next
 * `eval` or `run --resume` writes, never reports that disagree with it.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../common/io.js';
import type { CacheLike } from '../experiment/backend.js';
import type { Results } from '../experiment/results.js';
import { type ReportFiles, writeReports } from './write.js';

/** The report files of a run folder that carry its numbers: what writeReports writes. */
function reportFiles(runDir: string): string[] {
  const top = readdirSync(runDir).filter(
    (f) =>
      ['table2.md', 'per_disease.md', 'report.md', 'report.html'].includes(f) || /^table2-.+\.md$/.test(f),
  );
  const plots = join(runDir, 'plots');
  const drawn = existsSync(plots) ? readdirSync(plots).filter((f) => f.endsWith('.png')) : [];
  return [...top.map((f) => join(runDir, f)), ...drawn.map((f) => join(plots, f))];
}

/** Replaces a run's results.json and its reports; returns the reports written. */
export async function publishResults(
  runDir: string,
  results: Results,
  opts: { cache?: CacheLike } = {},
): Promise<ReportFiles> {
  for (const f of reportFiles(runDir)) rmSync(f, { force: true });
  writeJsonAtomic(join(runDir, 'results.json'), results);
  return writeReports(runDir, results, opts);
}
