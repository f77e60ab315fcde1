/** Table 2 on each test dataset of config.test.datasets: table2-<name>.md and the report's section. */

import type { CrossDatasetResult } from '../experiment/cross-dataset.js';
import { METRIC_LABELS } from '../experiment/evaluate.js';
import type { Results } from '../experiment/results.js';
import { mdText } from './md-text.js';
import { fmt, metricTable, table2Markdown } from './tables.js';

/** The run's results as seen on one test dataset (its evaluation and test facts; no segmenter section). */
function onDataset(r: Results, x: CrossDatasetResult): Results {
  return {
    ...r,
    segmenter: null,
    evaluation: x.evaluation,
    data: {
      ...r.data,
      counts: { ...r.data.counts, test: x.counts.test },
      testPrevalence: x.testPrevalence,
      allNegativeMeanLabelAccuracy: x.allNegativeMeanLabelAccuracy,
    },
  };
}

function provenance(r: Results, x: CrossDatasetResult): string {
  return (
    `Trained on \`${r.config.data.dataset}\` (${r.data.counts.train} training images), tested on the ${x.counts.test} test-split images of \`${x.name}\` (${x.dataset}, ${mdText(x.root)}). ` +
    `Thresholds and operating points come from the ${r.config.data.dataset} validation split (${r.data.counts.validate} images): nothing is tuned on ${x.name}.`
  );
}

/** table2-<name>.md: Table 2 of the models tested on one other dataset. */
export function testDatasetTable2Markdown(r: Results, x: CrossDatasetResult): string {
  const body = table2Markdown(onDataset(r, x)).split('\n');
  // the shared table's title, then what was trained and tested where
  return [`${body[0]} — tested on ${x.name}`, '', provenance(r, x), ...body.slice(1)].join('\n');
}

/** The report's section: the primary metric's table per test dataset. */
export function testDatasetsMarkdown(r: Results): string {
  const primary = r.config.metrics.primary;
  const out = ['## Across datasets', ''];
  for (const x of Object.values(r.testDatasets ?? {})) {
    out.push(
      `### Tested on ${x.name} — ${METRIC_LABELS[primary]}`,
      '',
      provenance(r, x),
      `Predicting every finding absent scores ${fmt(x.allNegativeMeanLabelAccuracy)} there.`,
      '',
      metricTable(onDataset(r, x), primary),
      '',
      `Full table: [table2-${x.name}.md](table2-${x.name}.md).`,
      '',
    );
  }
  return out.join('\n');
}
