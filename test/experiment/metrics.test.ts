import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mulberry32 } from '../../ts/common/random.js';
import { meanSd } from '../../ts/common/stats.js';
import {
  auroc,
  bootstrapDiff,
  chooseThreshold,
  chooseThresholds,
  computeMetrics,
  exactMatch,
  top1Accuracy,
} from '../../ts/experiment/metrics.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test('auroc: hand-computed values, ties, perfect, inverted, single class', () => {
  // pos scores {0.8, 0.4}, neg {0.5, 0.1}: pairs (0.8>0.5,0.8>0.1,0.4<0.5,0.4>0.1) → 3/4
  close(auroc([0.8, 0.4, 0.5, 0.1], [1, 1, 0, 0]), 0.75);
  // a tie between a pos and a neg counts 1/2: pos {0.5}, neg {0.5, 0.2} → (0.5 + 1)/2
  close(auroc([0.5, 0.5, 0.2], [1, 0, 0]), 0.75);
  close(auroc([0.9, 0.8, 0.1], [1, 1, 0]), 1);
  close(auroc([0.1, 0.9], [1, 0]), 0);
  assert.ok(Number.isNaN(auroc([0.1, 0.9], [1, 1])));
  assert.ok(Number.isNaN(auroc([0.1, 0.9], [0, 0])));
  assert.ok(Number.isNaN(auroc([], [])));
});

test('a NaN score (a model with non-finite weights) is a RangeError, not an AUROC or a threshold', () => {
  // sorted with NaN the pairs came out in any order: 0.25, 0.5 or 0.75 from the same scores
  assert.throws(
    () => auroc([0.8, Number.NaN, 0.5, 0.1], [1, 1, 0, 0]),
    (e: Error) => e instanceof RangeError && /^scores\[1\] is NaN/.test(e.message),
  );
  assert.throws(() => chooseThreshold([0.2, Number.NaN, 0.7], [0, 1, 1], 'youden'), /scores\[1\] is NaN/);
  const a = { probs: [0.9, Number.NaN, 0.3, 0.7], labels: [1, 0, 0, 1], mask: [1, 1, 1, 1], n: 2, k: 2 };
  assert.throws(
    () => computeMetrics(a, [0.5, 0.5]),
    (e: Error) => e instanceof RangeError && /^probs\[0, 1\] \(row 0, finding 1\) is NaN/.test(e.message),
  );
  assert.throws(() => chooseThresholds(a, 'accuracy'), /probs\[0, 1\]/);
  // masked out, a row without a prediction is left out as before
  const m = computeMetrics({ ...a, mask: [1, 0, 1, 1] }, [0.5, 0.5]);
  close(m.perLabel[0]!.auroc, 1);
  assert.ok(Number.isNaN(m.perLabel[1]!.auroc), 'one pair left: one class');
});

// 4 images × 2 labels; label 1 has a masked-out entry.
const probs = [0.9, 0.2, 0.3, 0.7, 0.6, 0.4, 0.1, 0.8];
const labels = [1, 0, 0, 1, 1, 1, 0, 0];
const mask = [1, 1, 1, 1, 1, 0, 1, 1];
const A = { probs, labels, mask, n: 4, k: 2 };

test('computeMetrics at 0.5: accuracy, exact match, sens/spec/F1, AUROC with a masked label', () => {
  const m = computeMetrics(A, [0.5, 0.5]);
  // label 0: preds 1,0,1,0 vs 1,0,1,0 → acc 1, sens 1, spec 1, F1 1, AUROC 1
  close(m.perLabel[0]!.accuracy, 1);
  close(m.perLabel[0]!.auroc, 1);
  // label 1 (row 2 ignored): scores .2,.7,.8 labels 0,1,0 → preds 0,1,1: TP1 FP1 TN1 FN0
  close(m.perLabel[1]!.accuracy, 2 / 3);
  close(m.perLabel[1]!.sensitivity, 1);
  close(m.perLabel[1]!.specificity, 0.5);
  close(m.perLabel[1]!.f1, 2 / 3);
  close(m.perLabel[1]!.auroc, 0.5); // pos .7 vs neg {.2,.8}
  assert.is(m.perLabel[1]!.positives, 1);
  assert.is(m.perLabel[1]!.negatives, 2);
  close(m.meanLabelAccuracy, (1 + 2 / 3) / 2);
  close(m.macroAUROC, 0.75);
  close(m.macroF1, (1 + 2 / 3) / 2);
  // exact match: row0 ok, row1 ok, row2 ok (label1 ignored), row3 wrong (label1 .8 ≥ .5 but 0) → 3/4
  close(m.exactMatch, 0.75);
  close(exactMatch(A, [0.5, 0.85]), 0.75); // now row1 wrong (.7 < .85), row3 right
});

test('operating thresholds drive sensitivity/specificity/F1, thresholds drive accuracy', () => {
  const m = computeMetrics(A, [0.5, 0.5], undefined, [0.5, 0.75]);
  close(m.perLabel[1]!.accuracy, 2 / 3); // at 0.5
  // label 1 at 0.75: scores .2,.7,.8 labels 0,1,0 → preds 0,0,1: TP0 FN1 FP1 TN1
  close(m.perLabel[1]!.sensitivity, 0);
  close(m.perLabel[1]!.specificity, 0.5);
  close(m.perLabel[1]!.f1, 0);
  assert.is(m.perLabel[1]!.operatingThreshold, 0.75);
  close(m.exactMatch, 0.75);
});

test('single-class label: AUROC NaN and excluded from the macro mean', () => {
  const B = { probs: [0.9, 0.1, 0.2, 0.3], labels: [1, 0, 0, 0], n: 2, k: 2 };
  const m = computeMetrics(B, [0.5, 0.5]);
  assert.ok(Number.isNaN(m.perLabel[1]!.auroc));
  assert.ok(Number.isNaN(m.perLabel[1]!.sensitivity)); // no positives
  close(m.perLabel[1]!.specificity, 1);
  close(m.macroAUROC, 1);
  const json = JSON.parse(JSON.stringify(m));
  assert.is(json.perLabel[1].auroc, null);
});

test('thresholds chosen on validation', () => {
  // separable: any threshold in (0.4, 0.6) is optimal for youden/accuracy/f1; midpoint is 0.5
  close(chooseThreshold([0.1, 0.4, 0.6, 0.9], [0, 0, 1, 1], 'youden'), 0.5);
  close(chooseThreshold([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1], 'accuracy'), 0.25);
  close(chooseThreshold([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1], 'f1'), 0.25);
  assert.is(chooseThreshold([0.1, 0.2], [0, 0], 'youden'), 0.5); // undefined objective → 0.5
  assert.is(chooseThreshold([0.1, 0.2], [0, 1], 'fixed', 0.3), 0.3);
  const t = chooseThresholds(A, 'youden');
  assert.is(t.length, 2);
  const m = computeMetrics(A, t);
  // label 1 (.2→0, .7→1, .8→0) is not separable: best Youden J = 0.5 at t = 0.45 → acc 2/3
  close(t[1]!, 0.45);
  close(m.perLabel[1]!.accuracy, 2 / 3);
});

test('one class on validation: every rule falls back to the fixed threshold (accuracy and F1 picked 0.700001, 0.475, 0.099999)', () => {
  const s = [0.1, 0.2, 0.3, 0.35, 0.6, 0.7];
  for (const y of [
    [0, 0, 0, 0, 0, 0],
    [1, 1, 1, 1, 1, 1],
  ])
    for (const rule of ['youden', 'f1', 'accuracy', 'fixed'] as const) {
      assert.is(chooseThreshold(s, y, rule), 0.5, `${rule} on ${y.join('')}`);
      assert.is(chooseThreshold(s, y, rule, 0.3), 0.3, `${rule} on ${y.join('')} with fixedThreshold 0.3`);
    }
  assert.is(chooseThreshold([], [], 'accuracy'), 0.5);
  // a masked-out label is no class: label 1's only negative (row 2) is ignored; label 0 has both
  const v = {
    probs: [0.2, 0.9, 0.6, 0.6, 0.1, 0.3],
    labels: [0, 1, 1, 1, 0, 0],
    mask: [1, 1, 1, 1, 1, 0],
    n: 3,
    k: 2,
  };
  const t = chooseThresholds(v, 'accuracy');
  close(t[0]!, 0.4);
  assert.is(t[1], 0.5);
});

test('top-1 (5-way) accuracy uses only single-positive, fully-labelled images', () => {
  const a = {
    probs: [0.1, 0.9, 0.2, 0.8, 0.7, 0.3, 0.5, 0.5, 0.5],
    labels: [0, 1, 0, 1, 0, 0, 1, 1, 0],
    n: 3,
    k: 3,
  };
  const r = top1Accuracy(a); // row0 correct, row1 correct (argmax 0), row2 two positives → skipped
  assert.is(r.n, 2);
  close(r.accuracy, 1);
  const withMask = top1Accuracy({ ...a, mask: [1, 1, 1, 1, 0, 1, 1, 1, 1] });
  assert.is(withMask.n, 1);
});

test('bootstrap CI of masked − original brackets the point estimate and is deterministic', () => {
  const n = 200;
  const k = 1;
  const labs = new Float32Array(n);
  const po = new Float32Array(n);
  const pm = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    labs[i] = i % 2;
    po[i] = labs[i]! * 0.2 + ((i * 7919) % 100) / 100; // weak signal
    pm[i] = labs[i]! * 0.6 + ((i * 7919) % 100) / 100; // stronger signal
  }
  const pair = {
    original: { probs: po, labels: labs, n, k },
    masked: { probs: pm, labels: labs, n, k },
    thresholdsOriginal: [0.5],
    thresholdsMasked: [0.5],
  };
  const ci = bootstrapDiff([pair], 'macroAUROC', { iterations: 300, seed: 1 });
  assert.ok(ci.diff > 0);
  assert.ok(ci.lo <= ci.diff && ci.diff <= ci.hi);
  assert.ok(ci.lo > 0, 'masked clearly better');
  const again = bootstrapDiff([pair], 'macroAUROC', { iterations: 300, seed: 1 });
  assert.equal(again, ci);
  const none = bootstrapDiff([{ ...pair, masked: pair.original }], 'meanLabelAccuracy', { iterations: 50 });
  close(none.diff, 0);
  close(none.lo, 0);
  close(none.hi, 0);
});

test('bootstrap: a replicate in which a finding defined on the full test set loses its class is dropped, not averaged over fewer findings', () => {
  // finding 0: 20/20 classes, the same scores in both conditions (Δ 0); finding 1: one positive (row 0),
  // ranked last on original (AUROC 0) and first on masked (AUROC 1): macro Δ = (0 + 1) / 2 = 0.5.
  const n = 40;
  const labels: number[] = [];
  const po: number[] = [];
  const pm: number[] = [];
  for (let i = 0; i < n; i++) {
    const s0 = 0.3 + 0.4 * (i % 2) + 0.01 * ((i * 7) % 5);
    labels.push(i % 2, i === 0 ? 1 : 0);
    po.push(s0, i === 0 ? 0.01 : 0.5 + i / 100);
    pm.push(s0, i === 0 ? 0.99 : 0.5 + i / 100);
  }
  const arrays = (probs: number[]) => ({ probs, labels, n, k: 2 });
  const pair = {
    original: arrays(po),
    masked: arrays(pm),
    thresholdsOriginal: [0.5, 0.5],
    thresholdsMasked: [0.5, 0.5],
  };
  const ci = bootstrapDiff([pair], 'macroAUROC', { iterations: 300, seed: 7 });
  // replay the resamples: only those that drew row 0 keep finding 1 defined
  const rand = mulberry32(7);
  let withRow0 = 0;
  for (let b = 0; b < 300; b++) {
    let hit = false;
    for (let i = 0; i < n; i++) if (Math.floor(rand() * n) === 0) hit = true;
    if (hit) withRow0++;
  }
  assert.is(ci.samples, withRow0);
  assert.ok(withRow0 < 300 - 50, `${300 - withRow0} replicates lost the positive`);
  // each kept replicate has the same estimand as the point: finding 0 Δ 0, finding 1 Δ 1
  assert.equal([ci.diff, ci.lo, ci.hi], [0.5, 0.5, 0.5]);
  // the per-finding accuracy at 0.5 stays defined in every replicate: nothing is dropped
  assert.is(bootstrapDiff([pair], 'meanLabelAccuracy', { iterations: 300, seed: 7 }).samples, 300);
});

test('meanSd', () => {
  const r = meanSd([1, 2, 3, Number.NaN]);
  close(r.mean, 2);
  close(r.sd, 1);
  assert.is(r.n, 3);
  assert.is(meanSd([4]).sd, 0);
  assert.ok(Number.isNaN(meanSd([]).mean));
});

test.run();
