/**
 * The plots say what they show: the test split, what a bar and its error bar are, and the reference
 * lines they are read against; the Δ plot has a tick on 0.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { reportMarkdown } from '../../ts/report/markdown.js';
import { metricBarsSvg, perDiseaseDeltaSvg } from '../../ts/report/plots.js';
import { fakeResults } from './fake-results.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-plots-'));
const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);

test('the metric plots say the error bars are ± sample sd over seeds on the test split, and name their reference line', async () => {
  const r = await fakeResults(tmp);
  const said =
    'Test split. Bars: mean over 2 seeds; error bars: ± sample sd (n − 1) over seeds; zero-shot: one deterministic run, no error bar.';
  const auroc = texts(metricBarsSvg(r, 'macroAUROC'));
  assert.ok(auroc.includes(said), auroc.join(' | '));
  assert.ok(auroc.includes('chance 0.5'), auroc.join(' | '));
  const accuracy = texts(metricBarsSvg(r, 'meanLabelAccuracy'));
  assert.ok(accuracy.includes(said));
  assert.ok(accuracy.includes(`every finding absent ${r.data.allNegativeMeanLabelAccuracy.toFixed(3)}`));
  // the report says it above the plots too
  const report = reportMarkdown(r, { plots: ['plots/macroAUROC.png'], overlay: null });
  assert.ok(report.includes(`${said}\n\n![plots/macroAUROC.png](plots/macroAUROC.png)`));
});

test('the per-finding Δ AUROC plot: the test split, no error bars, and a tick on 0', async () => {
  const r = await fakeResults(tmp);
  const t = texts(perDiseaseDeltaSvg(r));
  assert.ok(
    t.some(
      (x) => x.startsWith('Test split.') && x.includes('mean over seeds') && x.includes('no error bars'),
    ),
    t.join(' | '),
  );
  assert.ok(t.includes('0.00'), t.join(' | '));
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
