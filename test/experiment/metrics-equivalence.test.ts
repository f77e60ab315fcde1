/**
 * The sorted-sweep threshold choice and the multiplicity bootstrap against the plain algorithms they
 * replaced (kept here as references): the same thresholds and the same intervals, to the bit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mulberry32 } from '../../ts/common/random.js';
import { nanMean, quantile } from '../../ts/common/stats.js';
import {
  accuracy,
  bootstrapDiff,
  chooseThreshold,
  chooseThresholds,
  computeMetrics,
  confusion,
  f1,
  type LabelArrays,
  type PairedCondition,
  type ScalarMetric,
  sensitivity,
  specificity,
  type ThresholdRule,
} from '../../ts/experiment/metrics.js';

/** The O(n²) reference: every candidate threshold scored by a full pass over the scores. */
function chooseThresholdReference(
  s: ArrayLike<number>,
  y: ArrayLike<number>,
  rule: ThresholdRule,
  fixed = 0.5,
) {
  if (rule === 'fixed') return fixed;
  let positives = 0;
  for (let i = 0; i < y.length; i++) if (y[i]! > 0.5) positives++;
  if (positives === 0 || positives === y.length) return fixed;
  const sorted = Array.from(s).sort((a, b) => a - b);
  const cands: number[] = [sorted[0]! - 1e-6];
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i] !== sorted[i - 1]) cands.push((sorted[i]! + sorted[i - 1]!) / 2);
  cands.push(sorted[sorted.length - 1]! + 1e-6);
  let best = fixed;
  let bestVal = Number.NEGATIVE_INFINITY;
  for (const t of cands) {
    const c = confusion(s, y, t);
    const v = rule === 'youden' ? sensitivity(c) + specificity(c) - 1 : rule === 'f1' ? f1(c) : accuracy(c);
    if (!Number.isFinite(v)) continue;
    if (v > bestVal + 1e-12 || (Math.abs(v - bestVal) <= 1e-12 && Math.abs(t - 0.5) < Math.abs(best - 0.5))) {
      bestVal = v;
      best = t;
    }
  }
  return Number.isFinite(bestVal) ? best : fixed;
}

/** The reference bootstrap: every replicate copies the drawn rows and recomputes computeMetrics on them. */
function bootstrapDiffReference(
  pairs: PairedCondition[],
  metric: ScalarMetric,
  { iterations = 1000, seed = 12345, alpha = 0.05 } = {},
) {
  const perFinding = ({ macroAUROC: 'auroc', macroF1: 'f1', meanLabelAccuracy: 'accuracy' } as const)[
    metric as 'macroAUROC'
  ] as 'auroc' | 'f1' | 'accuracy' | undefined;
  const scored = (rows?: ArrayLike<number>) =>
    pairs.map((p) => [
      computeMetrics(p.masked, p.thresholdsMasked, rows, p.operatingMasked ?? p.thresholdsMasked),
      computeMetrics(p.original, p.thresholdsOriginal, rows, p.operatingOriginal ?? p.thresholdsOriginal),
    ]);
  const full = scored();
  const point = nanMean(full.map(([m, o]) => m![metric] - o![metric]));
  if (pairs.length === 0) return { metric, diff: Number.NaN, lo: Number.NaN, hi: Number.NaN, samples: 0 };
  const definedDiff = full.map(([m, o]) => Number.isFinite(m![metric] - o![metric]));
  const definedFindings = full.map((ms) =>
    ms.map((x) =>
      perFinding ? x.perLabel.flatMap((p, k) => (Number.isFinite(p[perFinding]) ? [k] : [])) : [],
    ),
  );
  const diffOf = (rows: ArrayLike<number>) => {
    const s = scored(rows);
    for (let j = 0; j < s.length; j++) {
      const [m, o] = s[j]!;
      if (definedDiff[j] && !Number.isFinite(m![metric] - o![metric])) return Number.NaN;
      for (let c = 0; c < 2; c++)
        for (const k of definedFindings[j]![c]!)
          if (!Number.isFinite(s[j]![c]!.perLabel[k]![perFinding!])) return Number.NaN;
    }
    return nanMean(s.map(([m, o]) => m![metric] - o![metric]));
  };
  const n = pairs[0]!.original.n;
  const rand = mulberry32(seed);
  const ds: number[] = [];
  const rows = new Uint32Array(n);
  for (let b = 0; b < iterations; b++) {
    for (let i = 0; i < n; i++) rows[i] = Math.floor(rand() * n);
    const d = diffOf(rows);
    if (Number.isFinite(d)) ds.push(d);
  }
  ds.sort((a, b) => a - b);
  return {
    metric,
    diff: point,
    lo: quantile(ds, alpha / 2),
    hi: quantile(ds, 1 - alpha / 2),
    samples: ds.length,
  };
}

const RULES: ThresholdRule[] = ['youden', 'f1', 'accuracy', 'fixed'];
const METRICS: ScalarMetric[] = ['meanLabelAccuracy', 'exactMatch', 'macroAUROC', 'macroF1'];

/** Scores on a coarse grid (many ties), float32 (as the models give them) or full doubles. */
function randomScore(r: () => number, kind: number): number {
  if (kind === 0) return Math.round(r() * 8) / 8;
  if (kind === 1) return Math.fround(r());
  return r() * 4 - 2;
}

test('chooseThreshold: the same threshold as the full-pass reference on random cases (ties, one class, n = 1, every rule)', () => {
  const r = mulberry32(2024);
  let cases = 0;
  for (let c = 0; c < 3000; c++) {
    const n = c % 10 === 0 ? 1 + (c % 3) : 1 + Math.floor(r() * (c % 7 === 0 ? 400 : 40));
    const kind = c % 3;
    const pPos = [0, 1, 0.05, 0.3, 0.5, 0.9][c % 6]!;
    const s: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < n; i++) {
      s.push(randomScore(r, kind));
      y.push(r() < pPos ? 1 : 0);
    }
    const input = c % 2 ? Float32Array.from(s) : s;
    for (const rule of RULES) {
      const fixed = c % 5 === 0 ? 0.3 : 0.5;
      const want = chooseThresholdReference(input, y, rule, fixed);
      const got = chooseThreshold(input, y, rule, fixed);
      assert.ok(Object.is(got, want), `case ${c}, ${rule}, n ${n}: ${got} != ${want} (reference)`);
      cases++;
    }
  }
  assert.is(cases, 12000);
});

test('chooseThreshold: midpoints that round onto a neighbouring score, infinities and signed zeros count as a full pass does', () => {
  const a = 0.1;
  const next = a + Number.EPSILON / 16; // the double right after 0.1: their midpoint rounds onto one of them
  const cases: [number[], number[]][] = [
    [
      [a, next, next, a, 0.7],
      [0, 1, 0, 1, 1],
    ],
    [
      [a, next, 0.3],
      [1, 0, 1],
    ],
    [
      [-Infinity, 0.2, Infinity, 0.4],
      [0, 1, 1, 0],
    ],
    [
      [-Infinity, Infinity],
      [1, 0],
    ],
    [
      [-0, 0, 0.5, -0],
      [1, 0, 1, 0],
    ],
    [
      [1e300, -1e300, 1e300, 0],
      [1, 0, 0, 1],
    ],
    [
      [5e15, 5e15 + 1, 5e15 + 2],
      [0, 1, 1],
    ],
  ];
  for (const [s, y] of cases)
    for (const rule of RULES) {
      const want = chooseThresholdReference(s, y, rule);
      assert.ok(
        Object.is(chooseThreshold(s, y, rule), want),
        `${rule} on ${s}: ${chooseThreshold(s, y, rule)} != ${want}`,
      );
    }
});

/** `n` test rows of `k` findings: tied or float32 scores, some masked labels, some findings with one class. */
function randomArrays(r: () => number, n: number, k: number, kind: number, maskRate: number): LabelArrays {
  const probs = new Float32Array(n * k);
  const labels = new Float32Array(n * k);
  const mask = new Float32Array(n * k);
  const rate = Array.from({ length: k }, (_, j) => [0.3, 0.05, 0, 0.5, 1][j % 5]!);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < k; j++) {
      labels[i * k + j] = r() < rate[j]! ? 1 : 0;
      probs[i * k + j] = Math.min(1, Math.max(0, 0.3 * labels[i * k + j]! + randomScore(r, kind) * 0.7));
      mask[i * k + j] = r() < maskRate ? 0 : 1;
      // a masked-out label may have no score at all
      if (mask[i * k + j] === 0 && r() < 0.5) probs[i * k + j] = Number.NaN;
    }
  return { probs, labels, mask: maskRate > 0 ? mask : null, n, k };
}

const fields = (d: { diff: number; lo: number; hi: number; samples: number }) => [
  d.diff,
  d.lo,
  d.hi,
  d.samples,
];

test('bootstrapDiff: the same point difference, bounds and sample count as the resampling reference (random cases, every metric)', () => {
  const r = mulberry32(77);
  let compared = 0;
  for (let c = 0; c < 60; c++) {
    const n = [1, 2, 3, 7, 20, 60, 150][c % 7]!;
    const k = 1 + (c % 5);
    const kind = c % 2 === 0 ? 0 : 1;
    const seeds = 1 + (c % 3);
    const pairs: PairedCondition[] = [];
    for (let s = 0; s < seeds; s++) {
      const original = randomArrays(r, n, k, kind, c % 4 === 0 ? 0 : 0.15);
      // the same images and labels, other scores
      const masked = randomArrays(r, n, k, kind, 0);
      masked.labels = original.labels;
      masked.mask = original.mask;
      const rule = (['youden', 'f1', 'accuracy'] as const)[c % 3];
      pairs.push({
        original,
        masked,
        thresholdsOriginal: chooseThresholds(original, 'accuracy'),
        thresholdsMasked: chooseThresholds(masked, 'accuracy'),
        ...(c % 2
          ? {
              operatingOriginal: chooseThresholds(original, rule),
              operatingMasked: chooseThresholds(masked, rule),
            }
          : {}),
      });
    }
    for (const metric of METRICS) {
      const opts = { iterations: 40, seed: 1000 + c, alpha: c % 4 === 1 ? 0.1 : 0.05 };
      const want = bootstrapDiffReference(pairs, metric, opts);
      const got = bootstrapDiff(pairs, metric, opts);
      assert.is(got.metric, metric);
      const [g, w] = [fields(got), fields(want)];
      for (let i = 0; i < 4; i++)
        assert.ok(
          Object.is(g[i], w[i]),
          `case ${c} (n ${n}, k ${k}, ${seeds} seeds) ${metric}: ${g} != ${w}`,
        );
      compared++;
    }
  }
  assert.is(compared, 240);
  assert.equal(fields(bootstrapDiff([], 'macroAUROC')), fields(bootstrapDiffReference([], 'macroAUROC')));
});

test('bootstrapDiff: pairs over different test sets are a RangeError naming the pair, not a silent resample of the first', () => {
  const r = mulberry32(5);
  const a = randomArrays(r, 30, 2, 1, 0);
  const b = randomArrays(r, 31, 2, 1, 0);
  const pair = (o: LabelArrays, m: LabelArrays) => ({
    original: o,
    masked: m,
    thresholdsOriginal: [0.5, 0.5],
    thresholdsMasked: [0.5, 0.5],
  });
  assert.throws(
    () => bootstrapDiff([pair(a, a), pair(a, b)], 'macroAUROC', { iterations: 5 }),
    (e: Error) =>
      e instanceof RangeError &&
      /pairs\[1\]\.masked has 31 test rows, pairs\[0\]\.original 30/.test(e.message),
  );
});

test('bootstrapDiff: a counted NaN score is the RangeError computeMetrics gives, naming the same row and finding, for every metric', () => {
  const r = mulberry32(9);
  const a = randomArrays(r, 30, 3, 1, 0);
  const b = { ...randomArrays(r, 30, 3, 1, 0), labels: a.labels };
  b.probs[7 * 3 + 2] = Number.NaN;
  b.probs[9 * 3 + 1] = Number.NaN;
  const pair = {
    original: a,
    masked: b,
    thresholdsOriginal: [0.5, 0.5, 0.5],
    thresholdsMasked: [0.5, 0.5, 0.5],
  };
  for (const metric of METRICS) {
    let want = '';
    try {
      bootstrapDiffReference([pair], metric, { iterations: 3 });
    } catch (e) {
      want = (e as Error).message;
    }
    assert.match(want, /^probs\[9, 1\] \(row 9, finding 1\) is NaN/);
    assert.throws(
      () => bootstrapDiff([pair], metric, { iterations: 3 }),
      (e: Error) => e instanceof RangeError && e.message === want,
      metric,
    );
  }
});

test.run();
