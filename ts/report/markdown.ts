/** The text of report.md: run facts, the overlay figure, Table 2, plots, masked − original verdicts. */

import { FINDINGS } from '../common/labels.js';
import { METRIC_LABELS } from '../experiment/evaluate.js';
import type { Results } from '../experiment/results.js';
import { attributionMarkdown } from './attribution.js';
import { testDatasetsMarkdown } from './cross-dataset.js';
import { mdCode, mdText } from './md-text.js';
import { errorBarsText } from './plots.js';
import { segmenterQualityMarkdown } from './segmenter.js';
import { fmt, fmtDiffCI, metricTable, reevaluationNote, table2Caption, table2Groups } from './tables.js';

export function reportMarkdown(r: Results, files: { plots: string[]; overlay: string | null }): string {
  const primary = r.config.metrics.primary;
  const out: string[] = [
    '# cxrmask run report',
    '',
    `Run ${mdCode(r.run.dir)} · device ${mdText(r.run.device)} · ${r.seeds.length} seed(s) · git ${mdText(r.run.git.commit?.slice(0, 10) ?? 'unknown')}${r.run.git.dirty ? ' (dirty)' : ''} · ${fmt(r.run.timings.totalSeconds / 60, 1)} min.`,
    '',
    ...(r.run.model?.['source'] === 'random-init'
      ? [
          `Model: ${mdCode(r.run.model['preset'])} preset with **random initial weights** (no pretraining): zero-shot is at chance by construction; the trained rows show what the images themselves teach.`,
          '',
        ]
      : r.run.model
        ? [
            `Model: ${mdCode(r.run.model['preset'] ?? r.run.model['dir'])} (${mdText(r.run.model['source'] ?? 'exported checkpoint')}).`,
            '',
          ]
        : []),
    `Data: ${r.data.counts.train} train / ${r.data.counts.validate} validation / ${r.data.counts.test} test images; ` +
      `skipped (unreadable) images: ${
        Object.entries(r.data.skippedImages.features)
          .map(([v, n]) => `${mdText(v)} ${n}`)
          .join(', ') || '0'
      }; left out when the cache was built: ${
        Object.entries(r.data.skippedImages.cache ?? {})
          .map(([why, n]) => `${mdText(why)} ${n}`)
          .join(', ') || 'none'
      }.`,
    '',
  ];
  if (files.overlay) {
    out.push(
      '## Anatomical masking (Figure 1 style)',
      '',
      'Left: the test image as the model sees it; right: the same image with the CheXmask lung (red) and heart (blue) contours drawn in (Eq. 1).',
      '',
      `![original vs masked](${files.overlay})`,
      '',
    );
  }
  const note = reevaluationNote(r);
  out.push(`## Table 2 — ${METRIC_LABELS[primary]}`, '', table2Caption(r), '');
  if (note) out.push(note, '');
  out.push(metricTable(r, primary), '');
  if (r.segmenter) out.push(segmenterQualityMarkdown(r.segmenter), '');
  if (primary !== 'macroAUROC') out.push('### Macro AUROC', '', metricTable(r, 'macroAUROC'), '');
  out.push(
    'Full table with notes: [table2.md](table2.md); per finding: [per_disease.md](per_disease.md).',
    '',
  );
  if (files.plots.length) out.push(errorBarsText(r), '');
  for (const p of files.plots) out.push(`![${p}](${p})`, '');
  out.push('## Does masking help?', '');
  // the rows of the tables above, the metrics they show (the 5-way protocol is scored by top-1 alone)
  const rows = table2Groups(r);
  for (const d of r.evaluation.differences.filter((x) => x.metric === primary || x.metric === 'macroAUROC')) {
    const g = rows.find((x) => x.key === d.group);
    if (!g) continue;
    const verdict = !Number.isFinite(d.lo)
      ? 'undetermined'
      : d.lo > 0
        ? 'masked better (CI excludes 0)'
        : d.hi < 0
          ? 'masked worse (CI excludes 0)'
          : 'no clear difference (CI includes 0)';
    const what = d.contrast ? ` (${d.contrast.replace('masked-pred', 'predicted masks')})` : '';
    out.push(`- ${g.label}, ${d.metric}${what}: Δ ${fmtDiffCI(d, r.config.metrics.bootstrap)} — ${verdict}`);
  }
  if (r.testDatasets && Object.keys(r.testDatasets).length) out.push('', testDatasetsMarkdown(r));
  if (r.attribution) out.push('', attributionMarkdown(r.attribution));
  out.push('', '## Metric definitions', '');
  for (const [k, v] of Object.entries(r.definitions)) out.push(`- **${k}**: ${v}`);
  out.push('', `Findings: ${FINDINGS.join(', ')}. Every number is in results.json.`, '');
  return out.join('\n');
}
