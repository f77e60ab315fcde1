/**
 * Our metrics against scikit-learn's, what a Python user scores a CheXpert-style model with: AUROC
 * (roc_auc_score), the optimum each threshold rule reaches on validation (from roc_curve), and F1,
 * sensitivity, specificity and accuracy at the chosen thresholds on test. The scores are bf16 like a
 * model's (many ties), with U-Ignore masks and a rare finding, on real validation/test sizes of
 * MIMIC's official split.
 */
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { benchPython } from '../../bench/common.js';
import { mulberry32 } from '../../ts/common/random.js';
import {
  chooseThresholds,
  computeMetrics,
  type LabelArrays,
  type ThresholdRule,
} from '../../ts/experiment/metrics.js';

const K = 5;
// per finding: from a rare one (a handful of positives) to a common one
const PREVALENCE = [0.004, 0.05, 0.15, 0.3, 0.5];

/** A float rounded to bfloat16 (8 bits of mantissa), as a bf16 model's sigmoid gives it. */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = (u[0]! + 0x7fff + ((u[0]! >> 16) & 1)) & 0xffff0000;
  return f[0]!;
}

function labelArrays(n: number, seed: number): LabelArrays {
  const r = mulberry32(seed);
  const probs = new Float32Array(n * K);
  const labels = new Float32Array(n * K);
  const mask = new Float32Array(n * K);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < K; k++) {
      const j = i * K + k;
      labels[j] = r() < PREVALENCE[k]! ? 1 : 0;
      // Box-Muller noise around a logit that separates the classes by ~1.5
      const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      probs[j] = bf16(1 / (1 + Math.exp(-(labels[j]! * 1.5 - 1 + z))));
      mask[j] = r() < 0.9 ? 1 : 0; // U-Ignore: one label in ten not counted
    }
  return { probs, labels, mask, n, k: K };
}

const SKLEARN = `
import json, sys
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve, f1_score, recall_score, accuracy_score
d = json.load(sys.stdin)
K = d['k']
num = lambda v: None if np.isnan(v) else float(v)  # JSON has no NaN
def cols(a, k):
    s = np.asarray(a['probs'], dtype=np.float32).reshape(-1, K)[:, k].astype(np.float64)
    y = np.asarray(a['labels']).reshape(-1, K)[:, k] > 0.5
    m = np.asarray(a['mask']).reshape(-1, K)[:, k] > 0.5
    return s[m], y[m]
out = {'auroc': [], 'best': {}, 'reached': {}, 'test': {}}
for k in range(K):
    s, y = cols(d['test'], k)
    out['auroc'].append(roc_auc_score(y, s) if 0 < y.sum() < len(y) else None)
for rule, ts in d['thresholds'].items():
    out['best'][rule], out['reached'][rule], out['test'][rule] = [], [], []
    for k in range(K):
        s, y = cols(d['validate'], k)
        P, N = y.sum(), (~y).sum()
        # every threshold sklearn's ROC visits, the all-negative one (inf) included
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        tp, fp = tpr * P, fpr * N
        obj = {'youden': tpr - fpr, 'f1': 2 * tp / np.maximum(2 * tp + fp + (P - tp), 1e-300),
               'accuracy': (tp + N - fp) / (P + N)}[rule]
        out['best'][rule].append(float(obj.max()))
        p = s >= ts[k]
        reached = {'youden': recall_score(y, p) + recall_score(~y, ~p) - 1, 'f1': f1_score(y, p),
                   'accuracy': accuracy_score(y, p)}[rule]
        out['reached'][rule].append(float(reached))
        s, y = cols(d['test'], k)
        p = s >= ts[k]
        out['test'][rule].append({'f1': num(f1_score(y, p, zero_division=np.nan)), 'sensitivity': recall_score(y, p),
                                  'specificity': recall_score(~y, ~p), 'accuracy': accuracy_score(y, p)})
print(json.dumps(out))
`;

interface SklearnOut {
  auroc: (number | null)[];
  best: Record<string, number[]>;
  reached: Record<string, number[]>;
  test: Record<string, { f1: number | null; sensitivity: number; specificity: number; accuracy: number }[]>;
}

const plain = (a: LabelArrays) => ({
  probs: Array.from(a.probs),
  labels: Array.from(a.labels),
  mask: Array.from(a.mask!),
});

test('AUROC, the threshold rules and the metrics at their thresholds agree with scikit-learn', () => {
  const validate = labelArrays(2000, 11); // MIMIC-like validation and test sizes
  const testSet = labelArrays(3400, 12);
  const rules: ThresholdRule[] = ['youden', 'f1', 'accuracy'];
  const thresholds = Object.fromEntries(rules.map((r) => [r, chooseThresholds(validate, r)]));
  const { python } = benchPython('sklearn');
  const r = spawnSync(python, ['-c', SKLEARN], {
    input: JSON.stringify({ k: K, validate: plain(validate), test: plain(testSet), thresholds }),
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  assert.is(r.status, 0, r.stderr);
  const sk = JSON.parse(r.stdout) as SklearnOut;
  const close = (a: number, b: number, what: string) =>
    assert.ok(Math.abs(a - b) <= 1e-12, `${what}: ours ${a}, sklearn ${b}`);
  for (const rule of rules) {
    const ours = computeMetrics(testSet, thresholds[rule]!);
    for (let k = 0; k < K; k++) {
      const at = `${rule}, finding ${k}`;
      const auroc = sk.auroc[k];
      if (auroc === null) assert.ok(Number.isNaN(ours.perLabel[k]!.auroc), at);
      else close(ours.perLabel[k]!.auroc, auroc, `AUROC ${at}`);
      // our threshold reaches the best value of the rule's objective over every threshold sklearn's ROC visits
      close(sk.reached[rule]![k]!, sk.best[rule]![k]!, `validation optimum ${at}`);
      const t = sk.test[rule]![k]!;
      const p = ours.perLabel[k]!;
      close(p.accuracy, t.accuracy, `accuracy ${at}`);
      close(p.sensitivity, t.sensitivity, `sensitivity ${at}`);
      close(p.specificity, t.specificity, `specificity ${at}`);
      if (t.f1 === null) assert.ok(Number.isNaN(p.f1), at);
      else close(p.f1, t.f1, `F1 ${at}`);
    }
  }
  // the rare finding has a handful of positives on validation and test: defined, not a corner case skipped
  assert.ok(sk.auroc[0] !== null, 'the rare finding has positives on test');
});

test.run();
