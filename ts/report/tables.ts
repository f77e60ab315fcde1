/** Markdown tables: Table 2 (paper layout) and the per-disease comparison (§5.2). */

import { FINDINGS } from '../common/labels.js';
import { METRIC_LABELS, type MeanSdT, type Scalar } from '../experiment/evaluate.js';
import type { DiffCI } from '../experiment/metrics.js';
import type { Results } from '../experiment/results.js';
import { mdText } from './md-text.js';
import { segmenterQualityMarkdown } from './segmenter.js';

export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}

export function fmtSigned(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  const abs = Math.abs(x).toFixed(digits);
  // the sign of the number printed: a difference that rounds to 0 (two equal means a rounding error
  // apart) is +0.000, not −0.000
  return `${x < 0 && Number(abs) !== 0 ? '−' : '+'}${abs}`;
}

/**
 * A difference and its bootstrap CI, with how many of the `asked` resamples the CI is from when some
 * were dropped (a finding the metric averages lost a class in them; metrics.ts pairedBootstrap).
 */
export function fmtDiffCI(d: DiffCI, asked: number): string {
  const kept = d.samples < asked ? ` (${d.samples} of ${asked} resamples kept)` : '';
  return `${fmtSigned(d.diff)} [${fmtSigned(d.lo)}, ${fmtSigned(d.hi)}]${kept}`;
}

export function fmtMeanSd(m: MeanSdT | undefined, digits = 3): string {
  if (!m || !Number.isFinite(m.mean)) return 'n/a';
  return m.n > 1 ? `${m.mean.toFixed(digits)} ± ${m.sd.toFixed(digits)}` : m.mean.toFixed(digits);
}

/** A rule's thresholds; a chosen one falls back to metrics.fixedThreshold where validation has one class (metrics.ts). */
function ruleText(rule: string, fixed: number): string {
  const name = rule === 'accuracy' ? 'maximise accuracy' : rule === 'youden' ? "Youden's J" : 'maximise F1';
  return rule === 'fixed'
    ? `a fixed threshold ${fixed}`
    : `per-finding thresholds chosen on the validation split (${name}; a finding with one class among its validation labels gets ${fixed})`;
}

function thresholdRuleText(r: Results): string {
  return ruleText(r.config.metrics.thresholdRule, r.config.metrics.fixedThreshold);
}

function operatingRuleText(r: Results): string {
  return ruleText(r.config.metrics.operatingPointRule, r.config.metrics.fixedThreshold);
}

/**
 * How Table 2's metric met a threshold, as metrics.ts computes it: accuracy and exact match at the
 * thresholds t_k (thresholdRule), F1 at the operating points o_k (operatingPointRule), AUROC at none.
 */
function primaryThresholdText(r: Results): string {
  switch (r.config.metrics.primary) {
    case 'meanLabelAccuracy':
    case 'exactMatch':
      return `Predictions are thresholded with ${thresholdRuleText(r)}.`;
    case 'macroF1':
      return `F1 is computed at the operating point: predictions are thresholded with ${operatingRuleText(r)}.`;
    case 'macroAUROC':
      return 'Macro AUROC is threshold-free.';
  }
}

/** The rows of Table 2 (multi-label groups only; the 5-way softmax protocol gets its own line). */
export function table2Groups(r: Results) {
  return r.evaluation.groups.filter((g) => g.key !== 'zeroshot/softmax-5way');
}

function summaryOf(r: Results, group: string, v: 'original' | 'masked' | 'masked-pred') {
  return r.evaluation.summary.find((s) => s.group === group && s.testVariant === v);
}

/**
 * How many of the configured seeds a trained group's row is over, when fewer (a partly finished run
 * scored by `eval`): `(1/2 seeds)`; '' for a complete row and for zero-shot (one deterministic cell).
 */
function seedsNote(r: Results, g: ReturnType<typeof table2Groups>[number]): string {
  if (g.setup === 'zeroshot') return '';
  const have = summaryOf(r, g.key, 'original')?.seeds ?? summaryOf(r, g.key, 'masked')?.seeds;
  return have !== undefined && have < r.seeds.length ? ` (${have}/${r.seeds.length} seeds)` : '';
}

export function metricTable(r: Results, metric: Scalar, withDiff = true): string {
  // With config.segmenter: test images masked with predicted contours, and their paired differences.
  const pred = r.evaluation.summary.some((s) => s.testVariant === 'masked-pred');
  const lines = [
    `| Setup | Trained on | Test: original | Test: masked |${pred ? ' Test: masked (predicted) |' : ''}${withDiff ? ' Δ masked − original [95 % CI] |' : ''}${withDiff && pred ? ' Δ predicted − original [95 % CI] | Δ predicted − masked [95 % CI] |' : ''}`,
    `|---|---|---|---|${pred ? '---|' : ''}${withDiff ? '---|' : ''}${withDiff && pred ? '---|---|' : ''}`,
  ];
  for (const g of table2Groups(r)) {
    const o = summaryOf(r, g.key, 'original');
    const m = summaryOf(r, g.key, 'masked');
    const setup =
      g.setup === 'zeroshot'
        ? 'Zero-shot'
        : g.setup === 'linear-probe'
          ? 'Linear probing'
          : 'Joint fine-tuning';
    const trained = `${g.trainVariant === 'none' ? '—' : g.trainVariant}${seedsNote(r, g)}`;
    let row = `| ${setup} | ${trained} | ${fmtMeanSd(o?.metrics[metric])} | ${fmtMeanSd(m?.metrics[metric])} |`;
    if (pred) row += ` ${fmtMeanSd(summaryOf(r, g.key, 'masked-pred')?.metrics[metric])} |`;
    if (withDiff) {
      const d = r.evaluation.differences.find((x) => x.group === g.key && x.metric === metric && !x.contrast);
      const dm = Number.isFinite(o?.metrics[metric].mean ?? Number.NaN)
        ? (m?.metrics[metric].mean ?? Number.NaN) - (o?.metrics[metric].mean ?? Number.NaN)
        : Number.NaN;
      row += d ? ` ${fmtDiffCI(d, r.config.metrics.bootstrap)} |` : ` ${fmtSigned(dm)} |`;
      if (pred)
        for (const c of ['masked-pred − original', 'masked-pred − masked'] as const) {
          const e = r.evaluation.differences.find(
            (x) => x.group === g.key && x.metric === metric && x.contrast === c,
          );
          row += e ? ` ${fmtDiffCI(e, r.config.metrics.bootstrap)} |` : ' — |';
        }
    }
    lines.push(row);
  }
  return lines.join('\n');
}

/**
 * Table 2's caption (table2.md and report.md): the test split and its size, the seeds and the sd, how
 * the predictions were thresholded, and the bootstrap.
 */
export function table2Caption(r: Results): string {
  const seeds = r.seeds.length;
  const partial = table2Groups(r).some((g) => seedsNote(r, g))
    ? 'Rows marked (k/n seeds) are over the seeds whose cells have finished (a partly finished run): their mean, sd and Δ CI miss the others. '
    : '';
  return (
    `Test split, ${r.data.counts.test} images. Mean ± sample sd (n − 1) over ${seeds} seed${seeds === 1 ? '' : 's'} (${r.seeds.join(', ')}) for trained models; zero-shot is deterministic. ${partial}` +
    `${primaryThresholdText(r)} Δ: masked − original with a paired bootstrap 95 % CI over test images (${r.config.metrics.bootstrap} resamples; one in which a finding the metric averages loses its only positive or negative is dropped, and a CI from fewer says how many were kept).`
  );
}

/**
 * The line saying the numbers were scored again by `cxrmask eval` and with which metric settings over
 * config.json's (run.reevaluatedAt, run.evaluationOverrides); null for a run scored as it was trained.
 */
export function reevaluationNote(r: Results): string | null {
  const overrides = Object.entries(r.run.evaluationOverrides ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const settings = overrides
    ? `with these metric settings over config.json's: ${mdText(overrides)}`
    : "with config.json's metric settings";
  if (r.run.reevaluatedAt)
    return `Re-evaluated from the stored predictions (\`cxrmask eval\`) at ${mdText(r.run.reevaluatedAt)}, ${settings}.`;
  // a `run --resume` after an eval scores with the eval's settings too
  return overrides ? `Scored ${settings} (left by an earlier \`cxrmask eval\`).` : null;
}

export function table2Markdown(r: Results): string {
  const primary = r.config.metrics.primary;
  const zs5 = r.evaluation.summary.filter((s) => s.group === 'zeroshot/softmax-5way');
  const note = reevaluationNote(r);
  const out = [
    `# Table 2 — ${METRIC_LABELS[primary]} (\`${primary}\`)`,
    '',
    table2Caption(r),
    '',
    ...(note ? [note, ''] : []),
    metricTable(r, primary),
    '',
    ...(r.segmenter ? [segmenterQualityMarkdown(r.segmenter), ''] : []),
    ...(primary === 'meanLabelAccuracy'
      ? [
          `Reference point: predicting every finding absent scores ${fmt(r.data.allNegativeMeanLabelAccuracy)} on this test split ` +
            '(accuracy is dominated by negatives). Threshold-free comparison: macro AUROC below (chance 0.5).',
          '',
        ]
      : []),
  ];
  if (primary !== 'macroAUROC') {
    out.push('## Macro AUROC (threshold-free)', '', metricTable(r, 'macroAUROC'), '');
  }
  if (zs5.length) {
    const o = zs5.find((s) => s.testVariant === 'original');
    const m = zs5.find((s) => s.testVariant === 'masked');
    const n = r.evaluation.cells.find((c) => c.group === 'zeroshot/softmax-5way')?.top1.n ?? 0;
    out.push(
      '## Zero-shot, 5-way softmax protocol',
      '',
      `Top-1 accuracy over the ${n} test images with exactly one positive finding and no ignored label (chance 0.200): ` +
        `original ${fmtMeanSd(o?.metrics.top1Accuracy)}, masked ${fmtMeanSd(m?.metrics.top1Accuracy)}.`,
      '',
    );
  }
  // the definition of the metric the table shows (F1's lives with sensitivity's), then where the rest are
  const others = (
    [
      ['meanLabelAccuracy', 'mean label accuracy'],
      ['exactMatch', 'exact match'],
      ['macroF1', 'sensitivity, specificity, F1'],
    ] as const
  )
    .filter(([m]) => m !== primary)
    .map(([, words]) => words);
  out.push(
    `Metric definition: ${r.definitions[primary === 'macroF1' ? 'sensitivity' : primary] ?? ''}`,
    '',
    `Other metrics (${[...others, 'per-finding AUROC'].join(', ')}) are in results.json and per_disease.md.`,
    '',
  );
  return out.join('\n');
}

export function perDiseaseMarkdown(r: Results): string {
  const out = [
    '# Per-finding results: original vs masked test images',
    '',
    `AUROC, accuracy and F1 per finding (test split; mean ± sd over seeds; accuracy at ${thresholdRuleText(r)}; F1 at ${operatingRuleText(r)}). ` +
      'Δ = masked − original. n/a: undefined (e.g. a finding with a single class in the test set).',
    '',
  ];
  const note = reevaluationNote(r);
  if (note) out.push(note, '');
  for (const g of r.evaluation.groups) {
    const o = summaryOf(r, g.key, 'original');
    const m = summaryOf(r, g.key, 'masked');
    if (!o || !m) continue;
    out.push(`## ${g.label}`, '');
    out.push(
      '| Finding | AUROC original | AUROC masked | Δ AUROC | Acc. original | Acc. masked | Δ acc. | F1 original | F1 masked |',
    );
    out.push('|---|---|---|---|---|---|---|---|---|');
    FINDINGS.forEach((f, k) => {
      const po = o.perLabel[k]!;
      const pm = m.perLabel[k]!;
      out.push(
        `| ${f} | ${fmtMeanSd(po.auroc)} | ${fmtMeanSd(pm.auroc)} | ${fmtSigned(pm.auroc.mean - po.auroc.mean)} | ` +
          `${fmtMeanSd(po.accuracy)} | ${fmtMeanSd(pm.accuracy)} | ${fmtSigned(pm.accuracy.mean - po.accuracy.mean)} | ` +
          `${fmtMeanSd(po.f1)} | ${fmtMeanSd(pm.f1)} |`,
      );
    });
    out.push('');
  }
  const prev = Object.entries(r.data.testPrevalence)
    .map(([f, p]) => `${f} ${fmt(p, 2)}`)
    .join(', ');
  out.push(`Test prevalence: ${prev}.`, '');
  return out.join('\n');
}
