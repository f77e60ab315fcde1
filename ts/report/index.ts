/** Writes a run's reports next to results.json: table2.md, per_disease.md, plots/*.png, report.md/html. */
import { join } from 'node:path';
import type { CacheLike } from '../experiment/backend.js';
import { METRIC_LABELS } from '../experiment/evaluate.js';
import { writeFileAtomic } from '../experiment/io.js';
import type { Results } from '../experiment/results.js';
import { FINDINGS } from '../labels.js';
import { overlayExamplePng, pickExample } from './overlay.js';
import { metricBarsSvg, perDiseaseDeltaSvg, svgToPng } from './plots.js';
import { fmt, fmtSigned, metricTable, perDiseaseMarkdown, table2Markdown } from './tables.js';

export { groupedBarSvg, svgToPng } from './plots.js';
export { metricTable, perDiseaseMarkdown, table2Markdown } from './tables.js';

export interface ReportFiles {
  table2: string;
  perDisease: string;
  plots: string[];
  overlay: string | null;
  reportMd: string;
  reportHtml: string;
}

function mdToHtml(md: string): string {
  // Minimal converter for the markdown we generate: headings, tables, images, paragraphs.
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const inline = (s: string) =>
    esc(s)
      .replace(/!\[([^\]]*)\]\(([^)]+)\)/g, '<img alt="$1" src="$2">')
      .replace(/`([^`]+)`/g, '<code>$1</code>')
      .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
  const lines = md.split('\n');
  const html: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.startsWith('|')) {
      const rows: string[][] = [];
      while (i < lines.length && lines[i]!.startsWith('|')) {
        rows.push(
          lines[i]!.slice(1, -1)
            .split('|')
            .map((c) => c.trim()),
        );
        i++;
      }
      const [head, , ...body] = rows;
      html.push(
        '<table><thead><tr>' + head!.map((c) => `<th>${inline(c)}</th>`).join('') + '</tr></thead><tbody>',
      );
      for (const r of body) html.push('<tr>' + r.map((c) => `<td>${inline(c)}</td>`).join('') + '</tr>');
      html.push('</tbody></table>');
      continue;
    }
    const h = /^(#{1,4}) (.*)$/.exec(l);
    if (h) html.push(`<h${h[1]!.length}>${inline(h[2]!)}</h${h[1]!.length}>`);
    else if (l.startsWith('- ')) html.push(`<ul><li>${inline(l.slice(2))}</li></ul>`);
    else if (l.trim()) html.push(`<p>${inline(l)}</p>`);
    i++;
  }
  return (
    '<!doctype html><html><head><meta charset="utf-8"><title>cxrmask report</title><style>' +
    'body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}' +
    'table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}' +
    'td:first-child,th:first-child{text-align:left}img{max-width:100%}code{background:#f3f3f3}' +
    `</style></head><body>\n${html.join('\n')}\n</body></html>\n`
  );
}

export function reportMarkdown(r: Results, files: { plots: string[]; overlay: string | null }): string {
  const primary = r.config.metrics.primary;
  const out: string[] = [
    '# cxrmask run report',
    '',
    `Run \`${r.run.dir}\` · device ${r.run.device} · ${r.seeds.length} seed(s) · git ${r.run.git.commit?.slice(0, 10) ?? 'unknown'}${r.run.git.dirty ? ' (dirty)' : ''} · ${fmt(r.run.timings.totalSeconds / 60, 1)} min.`,
    '',
    ...(r.run.model?.['source'] === 'random-init'
      ? [
          `Model: \`${r.run.model['preset']}\` preset with **random initial weights** (no pretraining): zero-shot is at chance by construction; the trained rows show what the images themselves teach.`,
          '',
        ]
      : r.run.model
        ? [
            `Model: \`${r.run.model['preset'] ?? r.run.model['dir']}\` (${r.run.model['source'] ?? 'exported checkpoint'}).`,
            '',
          ]
        : []),
    `Data: ${r.data.counts.train} train / ${r.data.counts.validate} validation / ${r.data.counts.test} test images; ` +
      `skipped (unreadable) images: ${
        Object.entries(r.data.skippedImages.features)
          .map(([v, n]) => `${v} ${n}`)
          .join(', ') || '0'
      }; left out when the cache was built: ${
        Object.entries(r.data.skippedImages.cache ?? {})
          .map(([why, n]) => `${why} ${n}`)
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
  out.push(`## Table 2 — ${METRIC_LABELS[primary]}`, '', metricTable(r, primary), '');
  if (primary !== 'macroAUROC') out.push('### Macro AUROC', '', metricTable(r, 'macroAUROC'), '');
  out.push(
    'Full table with notes: [table2.md](table2.md); per finding: [per_disease.md](per_disease.md).',
    '',
  );
  for (const p of files.plots) out.push(`![${p}](${p})`, '');
  out.push('## Does masking help?', '');
  for (const d of r.evaluation.differences.filter((x) => x.metric === primary || x.metric === 'macroAUROC')) {
    const g = r.evaluation.groups.find((x) => x.key === d.group);
    const verdict = !Number.isFinite(d.lo)
      ? 'undetermined'
      : d.lo > 0
        ? 'masked better (CI excludes 0)'
        : d.hi < 0
          ? 'masked worse (CI excludes 0)'
          : 'no clear difference (CI includes 0)';
    out.push(
      `- ${g?.label ?? d.group}, ${d.metric}: Δ ${fmtSigned(d.diff)} [${fmtSigned(d.lo)}, ${fmtSigned(d.hi)}] — ${verdict}`,
    );
  }
  out.push('', '## Metric definitions', '');
  for (const [k, v] of Object.entries(r.definitions)) out.push(`- **${k}**: ${v}`);
  out.push('', `Findings: ${FINDINGS.join(', ')}. Every number is in results.json.`, '');
  return out.join('\n');
}

export async function writeReports(
  runDir: string,
  r: Results,
  opts: { cache?: CacheLike } = {},
): Promise<ReportFiles> {
  const table2 = join(runDir, 'table2.md');
  const perDisease = join(runDir, 'per_disease.md');
  writeFileAtomic(table2, table2Markdown(r));
  writeFileAtomic(perDisease, perDiseaseMarkdown(r));
  const plots: string[] = [];
  const plotDefs: [string, () => string][] = [
    [`plots/${r.config.metrics.primary}.png`, () => metricBarsSvg(r, r.config.metrics.primary)],
    ['plots/macroAUROC.png', () => metricBarsSvg(r, 'macroAUROC')],
    ['plots/per_disease_delta_auroc.png', () => perDiseaseDeltaSvg(r)],
  ];
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
  writeFileAtomic(join(runDir, 'report.html'), mdToHtml(md));
  return {
    table2,
    perDisease,
    plots,
    overlay,
    reportMd: join(runDir, 'report.md'),
    reportHtml: join(runDir, 'report.html'),
  };
}
