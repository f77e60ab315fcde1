/**
 * The text around the numbers of table2.md, per_disease.md and report.md says what was computed: which
 * thresholds Table 2's metric used, and how the cells are formatted.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ThresholdRule } from '../../ts/experiment/metrics.js';
import type { Results } from '../../ts/experiment/results.js';
import { reportMarkdown } from '../../ts/report/markdown.js';
import {
  fmtSigned,
  metricTable,
  perDiseaseMarkdown,
  table2Caption,
  table2Markdown,
} from '../../ts/report/tables.js';
import { fakeResults as fakeRun } from './fake-results.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-tables-'));

const fakeResults = () => fakeRun(tmp);

function withMetrics(r: Results, metrics: Partial<Results['config']['metrics']>): Results {
  return { ...r, config: { ...r.config, metrics: { ...r.config.metrics, ...metrics } } };
}

const RULES: ThresholdRule[] = ['accuracy', 'youden', 'f1', 'fixed'];
const RULE_NAMES: Record<ThresholdRule, string> = {
  accuracy: 'maximise accuracy',
  youden: "Youden's J",
  f1: 'maximise F1',
  fixed: 'a fixed threshold 0.35',
};

test("Table 2's caption names the thresholds its metric was computed at, for every primary metric and rule", async () => {
  const r = await fakeResults();
  for (const primary of ['meanLabelAccuracy', 'exactMatch', 'macroF1', 'macroAUROC'] as const)
    for (const thresholdRule of RULES)
      for (const operatingPointRule of RULES) {
        const caption = table2Caption(
          withMetrics(r, { primary, thresholdRule, operatingPointRule, fixedThreshold: 0.35 }),
        );
        const what = `${primary}, thresholdRule ${thresholdRule}, operatingPointRule ${operatingPointRule}: ${caption}`;
        // metrics.ts: accuracy and exact match at t_k, F1 at the operating point o_k, AUROC at none
        const used =
          primary === 'macroF1' ? operatingPointRule : primary === 'macroAUROC' ? null : thresholdRule;
        if (used === null) {
          assert.ok(caption.includes('Macro AUROC is threshold-free.'), what);
          assert.not.match(caption, /thresholded/, what);
          continue;
        }
        assert.ok(caption.includes(RULE_NAMES[used]), what);
        const unused = primary === 'macroF1' ? thresholdRule : operatingPointRule;
        if (unused !== used) assert.not.ok(caption.includes(RULE_NAMES[unused]), what);
        assert.is(caption.includes('at the operating point'), primary === 'macroF1', what);
      }
});

test('the captions name the threshold a finding with one class on validation falls back to: metrics.fixedThreshold, under every rule', async () => {
  const r = withMetrics(await fakeResults(), { fixedThreshold: 0.3, operatingPointRule: 'f1' });
  assert.ok(
    table2Caption(r).includes(
      'per-finding thresholds chosen on the validation split (maximise accuracy; a finding with one class among its validation labels gets 0.3)',
    ),
    table2Caption(r),
  );
  const perDisease = perDiseaseMarkdown(r);
  assert.ok(
    perDisease.includes('(maximise accuracy; a finding with one class among its validation labels gets 0.3)'),
  );
  assert.ok(
    perDisease.includes('(maximise F1; a finding with one class among its validation labels gets 0.3)'),
  );
  // with the fixed rule there is no fallback to name
  assert.ok(
    table2Caption(withMetrics(r, { thresholdRule: 'fixed' })).includes(
      'thresholded with a fixed threshold 0.3.',
    ),
  );
});

test('a bootstrap CI from fewer resamples than asked says how many were kept, in the tables and the verdicts', async () => {
  const r = await fakeResults();
  const lp = r.evaluation.differences.find(
    (d) => d.group === 'linear-probe/original' && d.metric === 'macroAUROC',
  )!;
  const full = r.evaluation.differences.find(
    (d) => d.group === 'linear-probe/masked' && d.metric === 'macroAUROC',
  )!;
  assert.is(full.samples, 20);
  lp.samples = 7;
  const table = metricTable(r, 'macroAUROC');
  const row = (trained: string) =>
    table.split('\n').find((l) => l.startsWith(`| Linear probing | ${trained} |`))!;
  const ci = `${fmtSigned(lp.diff)} [${fmtSigned(lp.lo)}, ${fmtSigned(lp.hi)}]`;
  assert.ok(row('original').endsWith(` ${ci} (7 of 20 resamples kept) |`), row('original'));
  assert.not.match(row('masked'), /resamples kept/);
  const report = reportMarkdown(r, { plots: [], overlay: null });
  assert.ok(
    report.includes(`- Linear probing, trained on original, macroAUROC: Δ ${ci} (7 of 20 resamples kept) — `),
    report,
  );
  assert.is(report.match(/resamples kept\)/g)?.length, 2, 'the table row and the verdict');
  assert.ok(
    table2Caption(r).includes(
      '(20 resamples; one in which a finding the metric averages loses its only positive or negative is dropped',
    ),
  );
});

test('a signed number is rounded before its sign is taken: no −0.000', () => {
  // per_disease.md's Δ of two means of 11/30 computed in another order
  assert.is(fmtSigned(0.36666666666666664 - 0.3666666666666667), '+0.000');
  assert.is(fmtSigned(-0.0004), '+0.000');
  assert.is(fmtSigned(-0), '+0.000');
  assert.is(fmtSigned(-0.0006), '−0.001');
  assert.is(fmtSigned(-0.013), '−0.013');
  assert.is(fmtSigned(0.0004), '+0.000');
  assert.is(fmtSigned(-0.26, 1), '−0.3');
  assert.is(fmtSigned(-0.04, 1), '+0.0');
  assert.is(fmtSigned(Number.NaN), 'n/a');
});

test('the 5-way line says which test images it counts: exactly one positive and no ignored label', async () => {
  const r = await fakeResults();
  const n = r.evaluation.cells.find((c) => c.group === 'zeroshot/softmax-5way')!.top1.n;
  assert.ok(
    table2Markdown(r).includes(
      `Top-1 accuracy over the ${n} test images with exactly one positive finding and no ignored label (chance 0.200): `,
    ),
  );
});

test('"Does masking help?" gives verdicts for the rows of the tables only, not the 5-way protocol scored by top-1', async () => {
  const r = await fakeResults();
  assert.ok(r.evaluation.differences.some((d) => d.group === 'zeroshot/softmax-5way'));
  const report = reportMarkdown(r, { plots: [], overlay: null });
  const section = report.slice(report.indexOf('## Does masking help?'));
  const verdicts = section
    .slice(0, section.indexOf('\n## '))
    .split('\n')
    .filter((l) => l.startsWith('- '));
  assert.not.ok(
    verdicts.some((l) => l.includes('softmax-5way')),
    verdicts.join('\n'),
  );
  // zero-shot per-finding, LP original, LP masked; the primary metric and macro AUROC
  assert.is(verdicts.length, 3 * 2, verdicts.join('\n'));
  assert.ok(verdicts[0]!.startsWith('- Zero-shot (per-finding), meanLabelAccuracy: Δ '), verdicts[0]);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test('table2.md defines the metric it shows, not always mean label accuracy', async () => {
  const r = await fakeResults();
  for (const [primary, words] of [
    ['meanLabelAccuracy', /Metric definition: The paper's 'accuracy averaged across the five findings'/],
    ['exactMatch', /Metric definition: Fraction of test images whose thresholded predictions match/],
    ['macroF1', /Metric definition: TP\/\(TP\+FN\) at the operating point/],
    ['macroAUROC', /Metric definition: Mean over findings of ROC AUC/],
  ] as const) {
    const md = table2Markdown(withMetrics(r, { primary }));
    assert.match(md, words, primary);
    if (primary !== 'meanLabelAccuracy') assert.match(md, /Other metrics \(mean label accuracy, /, primary);
  }
});

test.run();
