/** Writes a run's reports next to results.json: table2.md, per_disease.md, plots/*.png, report.md/html. */

import { lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../common/io.js';
import type { CacheLike } from '../experiment/backend.js';
import { METRIC_LABELS } from '../experiment/evaluate.js';
import type { Results } from '../experiment/results.js';
import { attributionBarsSvg } from './attribution.js';
import { testDatasetTable2Markdown } from './cross-dataset.js';
import { reportHtml } from './html.js';
import { reportMarkdown } from './markdown.js';
import { overlayExamplePng, pickExample } from './overlay.js';
import { metricBarsSvg, perDiseaseDeltaSvg, svgToPng } from './plots.js';
import { perDiseaseMarkdown, table2Markdown } from './tables.js';

/** The paths `writeReports` wrote. */
export interface ReportFiles {
  table2: string;
  perDisease: string;
  /** table2-<name>.md per test dataset (config.test.datasets). */
  table2ByDataset: string[];
  plots: string[];
  overlay: string | null;
  reportMd: string;
  reportHtml: string;
}

/** Every plot writeReports may write. */
const REPORT_PLOTS = [
  ...Object.keys(METRIC_LABELS).map((m) => `plots/${m}.png`),
  'plots/per_disease_delta_auroc.png',
  'plots/attribution_anatomy.png',
  'plots/overlay_example.png',
];

/** The report files of `runDir` that writeReports writes and that are there now (relative names). */
function reportFilesIn(runDir: string): string[] {
  const texts = readdirSync(runDir).filter(
    (f) =>
      ['table2.md', 'per_disease.md', 'report.md', 'report.html'].includes(f) || /^table2-.+\.md$/.test(f),
  );
  // only in a real plots folder: a link leads outside the run
  const plots = lstatSync(join(runDir, 'plots'), { throwIfNoEntry: false })?.isDirectory()
    ? REPORT_PLOTS
    : [];
  return [...texts, ...plots];
}

/**
 * Removes the run's report files but `keep` (relative names): each is a file or a link (the link
 * removed, its target untouched), of writeReports' names only. A report made from other results
 * leaves none of the earlier one's behind (a re-evaluation with another primary metric left
 * plots/<old metric>.png, numbers results.json no longer has); publishResults clears them all first.
 */
export function removeReportFiles(runDir: string, keep: readonly string[] = []): void {
  for (const name of reportFilesIn(runDir)) {
    if (keep.includes(name)) continue;
    const path = join(runDir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st?.isFile() || st?.isSymbolicLink()) unlinkSync(path);
  }
}

/**
 * Writes a run's reports from its results: table2.md, per_disease.md, table2-<test dataset>.md, plots,
 * report.md and report.html; then removes the report files of those names an earlier report left and
 * this one did not write (removeReportFiles), so none shows numbers of another scoring.
 */
export async function writeReports(
  runDir: string,
  r: Results,
  opts: { cache?: CacheLike } = {},
): Promise<ReportFiles> {
  const table2 = join(runDir, 'table2.md');
  const perDisease = join(runDir, 'per_disease.md');
  writeFileAtomic(table2, table2Markdown(r));
  writeFileAtomic(perDisease, perDiseaseMarkdown(r));
  const table2ByDataset: string[] = [];
  for (const x of Object.values(r.testDatasets ?? {})) {
    const file = join(runDir, `table2-${x.name}.md`);
    writeFileAtomic(file, testDatasetTable2Markdown(r, x));
    table2ByDataset.push(file);
  }
  const plots: string[] = [];
  const plotDefs: [string, () => string][] = [
    [`plots/${r.config.metrics.primary}.png`, () => metricBarsSvg(r, r.config.metrics.primary)],
    ['plots/macroAUROC.png', () => metricBarsSvg(r, 'macroAUROC')],
    ['plots/per_disease_delta_auroc.png', () => perDiseaseDeltaSvg(r)],
  ];
  const attribution = r.attribution;
  if (attribution?.models.length)
    plotDefs.push(['plots/attribution_anatomy.png', () => attributionBarsSvg(attribution)]);
  for (const [name, svg] of plotDefs) {
    if (plots.includes(name)) continue;
    writeFileAtomic(join(runDir, name), await svgToPng(svg()));
    plots.push(name);
  }
  let overlay: string | null = null;
  if (opts.cache) {
    const idx = pickExample(opts.cache);
    const png = idx === null ? null : await overlayExamplePng(opts.cache, idx);
    if (png) {
      overlay = 'plots/overlay_example.png';
      writeFileAtomic(join(runDir, overlay), png);
    }
  }
  const md = reportMarkdown(r, { plots, overlay });
  writeFileAtomic(join(runDir, 'report.md'), md);
  writeFileAtomic(join(runDir, 'report.html'), reportHtml(md));
  const written = ['table2.md', 'per_disease.md', 'report.md', 'report.html', ...plots];
  removeReportFiles(runDir, [
    ...written,
    ...table2ByDataset.map((f) => basename(f)),
    ...(overlay ? [overlay] : []),
  ]);
  return {
    table2,
    perDisease,
    table2ByDataset,
    plots,
    overlay,
    reportMd: join(runDir, 'report.md'),
    reportHtml: join(runDir, 'report.html'),
  };
}
