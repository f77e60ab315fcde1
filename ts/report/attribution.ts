/** The report's attribution section and figure (results.json `attribution`, ts/experiment/grid-attribution.ts). */

import { attributionTable, type GridAttribution, localisationTable } from '../experiment/grid-attribution.js';
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
  for (const s of g.skipped) out.push(`- ${s.model}: not measured — ${s.reason}`);
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
