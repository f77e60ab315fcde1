/**
 * `metrics` of the package root on cases small enough to count by hand: AUROC with ties, the
 * confusion-based rates, thresholds on validation, the metric set with an ignored label, and the
 * paired bootstrap. Imports only the root.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { metrics } from '../../ts/index.js';

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('auroc: the Mann–Whitney statistic, ties counted half; NaN without both classes', () => {
  // positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 1 + 2 of 4
  close(metrics.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75, 'auroc');
  close(metrics.auroc([0.5, 0.5, 0.9], [0, 1, 1]), 0.75, 'auroc with a tie');
  assert.ok(Number.isNaN(metrics.auroc([0.2, 0.3], [1, 1])));
});

test('confusion counts and the rates derived from them', () => {
  const c = metrics.confusion([0.2, 0.6, 0.7, 0.4, 0.5], [0, 1, 0, 1, 1], 0.5);
  assert.equal(c, { tp: 2, fp: 1, tn: 1, fn: 1 });
  close(metrics.sensitivity(c), 2 / 3, 'sensitivity');
  close(metrics.specificity(c), 1 / 2, 'specificity');
  close(metrics.f1(c), 4 / 6, 'f1');
  close(metrics.accuracy(c), 3 / 5, 'accuracy');
  assert.ok(Number.isNaN(metrics.sensitivity({ tp: 0, fp: 1, tn: 1, fn: 0 })));
});

test('thresholds: midpoints between validation scores, or the fixed one', () => {
  const val = { probs: [0.1, 0.9, 0.3, 0.7, 0.2, 0.8], labels: [0, 1, 1, 1, 0, 0], n: 3, k: 2 };
  // label 0: scores 0.1, 0.3, 0.2 with labels 0, 1, 0 → 0.25 separates them (accuracy 1)
  // label 1: 0.9, 0.7, 0.8 with 1, 1, 0 → no cut is perfect; accuracy 2/3 below 0.7 and at 0.85 ties,
  // and the candidate closest to 0.5 wins
  const t = metrics.chooseThresholds(val, 'accuracy');
  close(t[0]!, 0.25, 'label 0');
  close(t[1]!, 0.7 - 1e-6, 'label 1');
  assert.equal(metrics.chooseThresholds(val, 'fixed', 0.4), [0.4, 0.4]);
});

test('computeMetrics: an ignored label is left out of every count', () => {
  const a = {
    probs: [0.9, 0.1, 0.2, 0.8, 0.7, 0.6],
    labels: [1, 0, 0, 1, 0, 0],
    mask: [1, 1, 1, 1, 1, 0], // row 2, label 1 ignored
    n: 3,
    k: 2,
  };
  const m = metrics.computeMetrics(a, [0.5, 0.5]);
  assert.is(m.n, 3);
  assert.equal(
    m.perLabel.map((p) => [p.positives, p.negatives]),
    [
      [1, 2],
      [1, 1],
    ],
  );
  close(m.perLabel[0]!.accuracy, 2 / 3, 'label 0 accuracy'); // 0.7 on a negative is wrong
  close(m.perLabel[1]!.accuracy, 1, 'label 1 accuracy');
  close(m.meanLabelAccuracy, (2 / 3 + 1) / 2, 'mean label accuracy');
  close(m.exactMatch, 2 / 3, 'exact match');
  close(m.macroAUROC, 1, 'macro AUROC');
});

test('bootstrapDiff: the paired point difference, an interval around it, reproducible by seed', () => {
  const labels = [1, 0, 1, 0, 1, 0, 1, 0];
  const original = { probs: [0.6, 0.4, 0.4, 0.6, 0.7, 0.3, 0.6, 0.4], labels, n: 8, k: 1 };
  const masked = { probs: [0.7, 0.3, 0.6, 0.4, 0.8, 0.2, 0.7, 0.3], labels, n: 8, k: 1 };
  const pair = { original, masked, thresholdsOriginal: [0.5], thresholdsMasked: [0.5] };
  const d = metrics.bootstrapDiff([pair], 'meanLabelAccuracy', { iterations: 200, seed: 1 });
  close(d.diff, 1 - 6 / 8, 'accuracy masked − original');
  assert.ok(d.lo <= d.diff && d.diff <= d.hi, JSON.stringify(d));
  assert.ok(d.lo >= 0, 'masked is never worse on any resample');
  assert.is(d.samples, 200);
  assert.equal(metrics.bootstrapDiff([pair], 'meanLabelAccuracy', { iterations: 200, seed: 1 }), d);
});

test.run();
