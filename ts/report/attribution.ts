/** The report's attribution section and figure (results.json `attribution`, ts/experiment/grid-attribution.ts). */

import { FINDINGS } from '../common/labels.js';
import type { DiffInterval, ModelAttribution } from '../experiment/attribution-measure.js';
import type { GridAttribution } from '../experiment/grid-attribution.js';
import { ATTRIBUTION_METHOD_NAMES, type AttributionMethod } from '../model/attribution.js';
import { groupedBarSvg } from './plots.js';

/** Figure: share of attribution mass in lungs ∪ heart per model, original vs masked test images. */
export function attributionBarsSvg(g: GridAttribution): string {
  return groupedBarSvg({
    title: `Attribution mass in lungs ∪ heart (${g.method}) — original vs masked test images`,
    yLabel: 'share of attribution mass',
    categories: g.models.map((m) => m.model),
    series: (['original', 'masked'] as const).map((v) => ({
      name: `test: ${v}`,
      color: v === 'original' ? '#7f7f7f' : '#d62728',
      values: g.models.map((m) => m.anatomy[v].mean),
    })),
    yMin: 0,
    yMax: 1,
    refLine: g.models.length ? g.models.reduce((a, m) => a + m.anatomyArea, 0) / g.models.length : undefined,
  });
}

/** The report's section (markdown). */
export function attributionMarkdown(g: GridAttribution): string {
  const out = [
    '## Where the models look (attribution)',
    '',
    `Method: ${ATTRIBUTION_METHOD_NAMES[g.method as AttributionMethod] ?? g.method}${g.method === 'ig' ? ` (${g.steps} steps, zero baseline)` : ''}, up to ${g.imagesPerModel} test images per model; ${g.map}. docs/attribution.md says what the maps can and cannot show.`,
    '',
    attributionTable(g.models),
  ];
  const located = localisationTable(g.models);
  if (located)
    out.push(
      '',
      'Per finding, on the synthetic ground truth (where the generator drew it): share of attribution mass inside the region and pointing-game hit rate (the map peak inside it), against chance (the region share of the grid):',
      '',
      located,
    );
  if (g.examples?.length) {
    out.push(
      '',
      'Examples (image | map on the original input | map on the masked input; one colour scale per figure):',
      '',
    );
    for (const e of g.examples) out.push(`![${e}](${e})`, '');
  }
  return `${out.join('\n')}\n`;
}

/**
 * Markdown table per model and finding (synthetic data): attribution mass inside the drawn finding
 * and pointing-game hit rate, original and masked input, against chance (the region's grid share).
 */
export function localisationTable(results: ModelAttribution[]): string {
  const pct = (x: number | undefined) =>
    x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(1)} %`;
  const lines: string[] = [];
  for (const r of results) {
    if (!r.localisation) continue;
    for (const o of r.localisation.original) {
      const m = r.localisation.masked.find((x) => x.finding === o.finding);
      lines.push(
        `| ${r.model} | ${o.finding} | ${o.images} | ${pct(o.massInside)} | ${pct(m?.massInside)} | ${pct(o.pointingRate)} | ${pct(m?.pointingRate)} | ${pct(o.chance)} |`,
      );
    }
  }
  if (lines.length === 0) return '';
  return [
    '| model | finding | images | mass inside: original | masked | pointing game: original | masked | chance |',
    '|---|---|---|---|---|---|---|---|',
    ...lines,
  ].join('\n');
}

/** Markdown table of several models' numbers (for the report). */
export function attributionTable(results: ModelAttribution[]): string {
  const pct = (x: number | null | undefined) =>
    x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(1)} %`;
  const ci = (d: DiffInterval | null) =>
    d && Number.isFinite(d.diff)
      ? `${(100 * d.diff).toFixed(1)} [${(100 * d.lo).toFixed(1)}, ${(100 * d.hi).toFixed(1)}]`
      : '–';
  const lines = [
    '| model | images | lungs ∪ heart: original | masked | masked − original (95 % CI, pp) | area | finding region: original | masked | masked − original | area |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results)
    lines.push(
      `| ${r.model} | ${r.images} | ${pct(r.anatomy.original.mean)} | ${pct(r.anatomy.masked.mean)} | ${ci(r.anatomyDiff)} | ${pct(r.anatomyArea)} | ${pct(r.finding?.original.mean)} | ${pct(r.finding?.masked.mean)} | ${ci(r.findingDiff)} | ${pct(r.findingArea)} |`,
    );
  return `${lines.join('\n')}\n\nShare of attribution mass (sum over channels of |IG| unless stated) inside the region; "area" is the region's share of the image, the share an even map would give. Findings explained: those the image is labelled positive for (${FINDINGS.length} possible).\n`;
}
