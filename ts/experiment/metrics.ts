/**
 * Metrics for multi-label chest X-ray classification over the five FINDINGS.
 *
 * Conventions (shared by every function here):
 * - `probs`, `labels`, `mask` are row-major `[n, K]` arrays (K = 5 in FINDINGS order).
 * - `mask[i,k] = 0` means the label is ignored (U-Ignore / missing): the pair (i,k) is left out of
 *   every per-label count. A label with no positive or no negative among the counted pairs has an
 *   undefined AUROC, returned as `NaN` (serialised as `null` in JSON).
 * - A counted pair needs a score: a NaN one (a model with non-finite weights) is a RangeError, never
 *   ranked or thresholded as if it were a number. A row without a prediction has its mask set to 0.
 *
 * Definitions (see docs/experiments.md):
 * - `meanLabelAccuracy` — the paper's "accuracy averaged across the five findings":
 *     acc_k = #{i counted: 1[p_ik >= t_k] == y_ik} / #{i counted}, meanLabelAccuracy = mean_k acc_k
 *   over findings with ≥ 1 counted image, with per-finding thresholds t_k (rule: see `chooseThresholds`;
 *   the grid uses the accuracy-maximising threshold on validation).
 * - `exactMatch` — fraction of images whose thresholded predictions equal the labels on every counted
 *   label (images with no counted label are skipped).
 * - `auroc_k` — Mann–Whitney U / (P·N) with mid-ranks for ties; `macroAUROC` = mean of defined auroc_k.
 * - sensitivity_k = TP/(TP+FN), specificity_k = TN/(TN+FP), F1_k = 2TP/(2TP+FP+FN) at the operating
 *   threshold o_k (the grid uses Youden's J on validation), NaN when the denominator is 0; their
 *   macro versions average the defined per-label values.
 */

import { finishSteps, type Steps } from '../common/interrupt.js';
import { mulberry32 } from '../common/random.js';
import { nanMean, quantile } from '../common/stats.js';

/**
 * How a per-finding threshold is chosen on validation: Youden's J, best F1, best accuracy, or a fixed value.
 */
export type ThresholdRule = 'youden' | 'f1' | 'accuracy' | 'fixed';

/** Scores, labels and the label mask of `n` images, row-major `[n, k]`. */
export interface LabelArrays {
  probs: Float32Array | number[];
  labels: Float32Array | number[];
  mask?: Float32Array | number[] | null;
  n: number;
  k: number;
}

/** The metrics of one finding; NaN where undefined (no positive or no negative). */
export interface PerLabelMetrics {
  auroc: number;
  accuracy: number;
  sensitivity: number;
  specificity: number;
  f1: number;
  /** Threshold of the accuracy metrics. */
  threshold: number;
  /** Threshold of sensitivity / specificity / F1 (the operating point). */
  operatingThreshold: number;
  positives: number;
  negatives: number;
}

/** All metrics of one model on one test set: the macro averages and each finding. */
export interface MetricSet {
  meanLabelAccuracy: number;
  exactMatch: number;
  macroAUROC: number;
  macroSensitivity: number;
  macroSpecificity: number;
  macroF1: number;
  perLabel: PerLabelMetrics[];
  n: number;
}

function isCounted(mask: LabelArrays['mask'], idx: number): boolean {
  return !mask || mask[idx]! > 0.5;
}

/**
 * Scores and 0/1 labels of the counted pairs for label `k`, optionally restricted to `rows`.
 * @throws {RangeError} a counted pair's score is NaN.
 */
export function column(a: LabelArrays, k: number, rows?: ArrayLike<number>): { s: number[]; y: number[] } {
  const s: number[] = [];
  const y: number[] = [];
  const m = rows ? rows.length : a.n;
  for (let r = 0; r < m; r++) {
    const i = rows ? rows[r]! : r;
    const idx = i * a.k + k;
    if (!isCounted(a.mask, idx)) continue;
    if (Number.isNaN(a.probs[idx]!)) throw nanScore(`probs[${i}, ${k}] (row ${i}, finding ${k})`);
    s.push(a.probs[idx]!);
    y.push(a.labels[idx]! > 0.5 ? 1 : 0);
  }
  return { s, y };
}

const nanScore = (what: string) =>
  new RangeError(
    `${what} is NaN: every counted pair needs a score (mask a row without a prediction out; a model that outputs NaN has non-finite weights)`,
  );

/**
 * ROC AUC via the rank-sum (Mann–Whitney) statistic with mid-ranks for ties. NaN if one class is absent.
 * @throws {RangeError} a score is NaN (it has no rank).
 */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  for (let i = 0; i < n; i++) if (Number.isNaN(scores[i]!)) throw nanScore(`scores[${i}]`);
  let pos = 0;
  for (let i = 0; i < n; i++) if (labels[i]! > 0.5) pos++;
  const neg = n - pos;
  if (pos === 0 || neg === 0) return Number.NaN;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSumPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const midRank = (i + j) / 2 + 1; // 1-based mid-rank of the tie group
    for (let t = i; t <= j; t++) if (labels[order[t]!]! > 0.5) rankSumPos += midRank;
    i = j + 1;
  }
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Counts of a thresholded score against labels. */
export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Confusion counts of scores `s` thresholded at `t` (score ≥ t is positive) against labels `y`. */
export function confusion(s: ArrayLike<number>, y: ArrayLike<number>, t: number): Confusion {
  const c = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (let i = 0; i < s.length; i++) {
    const p = s[i]! >= t;
    if (y[i]! > 0.5) p ? c.tp++ : c.fn++;
    else p ? c.fp++ : c.tn++;
  }
  return c;
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : Number.NaN);
/** TP / (TP + FN); NaN when there is no positive. */
export const sensitivity = (c: Confusion) => ratio(c.tp, c.tp + c.fn);
/** TN / (TN + FP); NaN when there is no negative. */
export const specificity = (c: Confusion) => ratio(c.tn, c.tn + c.fp);
/** 2TP / (2TP + FP + FN); NaN when all three are 0. */
export const f1 = (c: Confusion) => ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn);
/** (TP + TN) / all; NaN for no pairs. */
export const accuracy = (c: Confusion) => ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn);

/**
 * One threshold for one label, chosen on validation scores.
 * - `youden`: maximise sensitivity + specificity − 1;
 * - `f1`: maximise F1; `accuracy`: maximise accuracy;
 * - `fixed`: `fixed` (default 0.5).
 * Candidates are midpoints between consecutive distinct scores (plus ±∞ ends); ties in the objective go
 * to the candidate closest to 0.5. Validation with one class (or none) → `fixed`, whatever the rule:
 * there is nothing to separate (Youden is undefined, F1 is 0 at every threshold without a positive,
 * accuracy would put the threshold past every score), so every rule falls back to the same threshold.
 * @throws {RangeError} a score is NaN (rules other than `fixed`).
 */
export function chooseThreshold(
  s: ArrayLike<number>,
  y: ArrayLike<number>,
  rule: ThresholdRule,
  fixed = 0.5,
): number {
  if (rule === 'fixed') return fixed;
  for (let i = 0; i < s.length; i++) if (Number.isNaN(s[i]!)) throw nanScore(`scores[${i}]`);
  let positives = 0;
  for (let i = 0; i < y.length; i++) if (y[i]! > 0.5) positives++;
  if (positives === 0 || positives === y.length) return fixed;
  // Sorted once: each candidate's confusion counts come from two binary searches instead of a pass over
  // every score. The counts are taken at the candidate itself (not assumed at its boundary), so a
  // midpoint that rounds onto a neighbouring score counts exactly as a full pass would.
  const n = s.length;
  const sorted = Float64Array.from(s).sort();
  let npos = 0;
  for (let i = 0; i < n; i++) if (y[i]! > 0.5) npos++;
  const pos = new Float64Array(npos);
  const neg = new Float64Array(n - npos);
  for (let i = 0, a = 0, b = 0; i < n; i++) {
    if (y[i]! > 0.5) pos[a++] = s[i]!;
    else neg[b++] = s[i]!;
  }
  pos.sort();
  neg.sort();
  let best = fixed;
  let bestVal = Number.NEGATIVE_INFINITY;
  const consider = (t: number) => {
    const tp = pos.length - firstAtLeast(pos, t);
    const fp = neg.length - firstAtLeast(neg, t);
    const c = { tp, fp, tn: neg.length - fp, fn: pos.length - tp };
    const v = rule === 'youden' ? sensitivity(c) + specificity(c) - 1 : rule === 'f1' ? f1(c) : accuracy(c);
    if (!Number.isFinite(v)) return;
    if (v > bestVal + 1e-12 || (Math.abs(v - bestVal) <= 1e-12 && Math.abs(t - 0.5) < Math.abs(best - 0.5))) {
      bestVal = v;
      best = t;
    }
  };
  // candidates in ascending order: below every score, midpoints between distinct scores, above every score
  consider(sorted[0]! - 1e-6);
  for (let i = 1; i < n; i++) if (sorted[i] !== sorted[i - 1]) consider((sorted[i]! + sorted[i - 1]!) / 2);
  consider(sorted[n - 1]! + 1e-6);
  return Number.isFinite(bestVal) ? best : fixed;
}

/** Index of the first element of ascending `a` that is ≥ `t` (`a.length` if none, and for a NaN `t`). */
function firstAtLeast(a: Float64Array, t: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! >= t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Per-label thresholds chosen on a validation set. */
export function chooseThresholds(val: LabelArrays, rule: ThresholdRule, fixed = 0.5): number[] {
  const out: number[] = [];
  for (let k = 0; k < val.k; k++) {
    const { s, y } = column(val, k);
    out.push(chooseThreshold(s, y, rule, fixed));
  }
  return out;
}

/** Image `i` for exact match: 0 no counted label, 1 a counted label mispredicted, 2 all right. */
function exactState(a: LabelArrays, thresholds: number[], i: number): 0 | 1 | 2 {
  let any = false;
  for (let k = 0; k < a.k; k++) {
    const idx = i * a.k + k;
    if (!isCounted(a.mask, idx)) continue;
    any = true;
    if (a.probs[idx]! >= thresholds[k]! !== a.labels[idx]! > 0.5) return 1;
  }
  return any ? 2 : 0;
}

/** Fraction of images (with ≥ 1 counted label) whose thresholded predictions match on all counted labels. */
export function exactMatch(a: LabelArrays, thresholds: number[], rows?: ArrayLike<number>): number {
  let ok = 0;
  let tot = 0;
  const m = rows ? rows.length : a.n;
  for (let r = 0; r < m; r++) {
    const state = exactState(a, thresholds, rows ? rows[r]! : r);
    if (state > 0) tot++;
    if (state === 2) ok++;
  }
  return ratio(ok, tot);
}

/**
 * Every metric of a `MetricSet`, optionally on a subset of rows (bootstrap). Accuracy metrics
 * (per-finding accuracy, exact match) use `thresholds`; sensitivity, specificity and F1 use
 * `operatingThresholds` (default: the same thresholds).
 */
export function computeMetrics(
  a: LabelArrays,
  thresholds: number[],
  rows?: ArrayLike<number>,
  operatingThresholds: number[] = thresholds,
): MetricSet {
  const perLabel: PerLabelMetrics[] = [];
  for (let k = 0; k < a.k; k++) {
    const { s, y } = column(a, k, rows);
    const c = confusion(s, y, thresholds[k]!);
    const op = operatingThresholds === thresholds ? c : confusion(s, y, operatingThresholds[k]!);
    perLabel.push({
      auroc: auroc(s, y),
      accuracy: accuracy(c),
      sensitivity: sensitivity(op),
      specificity: specificity(op),
      f1: f1(op),
      threshold: thresholds[k]!,
      operatingThreshold: operatingThresholds[k]!,
      positives: c.tp + c.fn,
      negatives: c.tn + c.fp,
    });
  }
  return {
    meanLabelAccuracy: nanMean(perLabel.map((p) => p.accuracy)),
    exactMatch: exactMatch(a, thresholds, rows),
    macroAUROC: nanMean(perLabel.map((p) => p.auroc)),
    macroSensitivity: nanMean(perLabel.map((p) => p.sensitivity)),
    macroSpecificity: nanMean(perLabel.map((p) => p.specificity)),
    macroF1: nanMean(perLabel.map((p) => p.f1)),
    perLabel,
    n: rows ? rows.length : a.n,
  };
}

/**
 * 5-way top-1 accuracy (the "5x200" protocol): over images with exactly one counted positive among the
 * K labels (and every label counted), the fraction whose argmax score is that label.
 */
export function top1Accuracy(a: LabelArrays): { accuracy: number; n: number } {
  let ok = 0;
  let tot = 0;
  for (let i = 0; i < a.n; i++) {
    let posK = -1;
    let npos = 0;
    let allCounted = true;
    for (let k = 0; k < a.k; k++) {
      const idx = i * a.k + k;
      if (!isCounted(a.mask, idx)) allCounted = false;
      if (a.labels[idx]! > 0.5) {
        npos++;
        posK = k;
      }
    }
    if (!allCounted || npos !== 1) continue;
    let arg = 0;
    for (let k = 1; k < a.k; k++) if (a.probs[i * a.k + k]! > a.probs[i * a.k + arg]!) arg = k;
    tot++;
    if (arg === posK) ok++;
  }
  return { accuracy: ratio(ok, tot), n: tot };
}

/**
 * One seed of a paired comparison: the same images scored as original and as masked, with their thresholds.
 */
export interface PairedCondition {
  original: LabelArrays;
  masked: LabelArrays;
  thresholdsOriginal: number[];
  thresholdsMasked: number[];
  /** Operating-point thresholds (sensitivity/specificity/F1); default: the thresholds above. */
  operatingOriginal?: number[];
  operatingMasked?: number[];
}

/** A difference (masked − original) of a metric and its bootstrap 95 % interval. */
export interface DiffCI {
  metric: string;
  diff: number;
  lo: number;
  hi: number;
  samples: number;
}

/** The scalar metrics a paired bootstrap compares. */
export type ScalarMetric = 'meanLabelAccuracy' | 'exactMatch' | 'macroAUROC' | 'macroF1';

/**
 * Paired bootstrap 95 % CI of (masked − original) for a scalar metric, averaged over `pairs` (the seeds),
 * which must share the same test images (same n and row order). Each replicate resamples test images
 * with replacement once and applies the same rows to every pair and both conditions. A replicate in
 * which a value defined on the full test set becomes undefined is dropped — a finding that lost a class
 * (its AUROC or F1 left out of the macro mean would change what is averaged, e.g. a single-positive
 * finding), or a seed's difference; `samples` counts the kept ones.
 * @throws {RangeError} the pairs' test sets differ in size, or a counted score is NaN.
 */
export function bootstrapDiff(
  pairs: PairedCondition[],
  metric: ScalarMetric,
  options: BootstrapOptions = {},
): DiffCI {
  return finishSteps(bootstrapDiffSteps(pairs, metric, options));
}

/** The replicates of a paired bootstrap and the quantiles that make its interval. */
export interface BootstrapOptions {
  /** Replicates (resamplings of the test images); default 1000. */
  iterations?: number;
  /** The resampling's seed; default 12345. */
  seed?: number;
  /** 1 − the interval's coverage; default 0.05. */
  alpha?: number;
}

/**
 * bootstrapDiff cut into steps, one replicate each (interrupt.ts's finishStepsInTurns runs them with
 * turns for the event loop): the same numbers, to the bit.
 */
export function* bootstrapDiffSteps(
  pairs: PairedCondition[],
  metric: ScalarMetric,
  { iterations = 1000, seed = 12345, alpha = 0.05 }: BootstrapOptions = {},
): Steps<DiffCI> {
  if (pairs.length === 0) return { metric, diff: Number.NaN, lo: Number.NaN, hi: Number.NaN, samples: 0 };
  // the arithmetic lives in plain closures; the generator only hands out the replicates
  const b = pairedBootstrap(pairs, metric, seed);
  for (let i = 0; i < iterations; i++) {
    b.replicate();
    yield;
  }
  return b.interval(alpha);
}

/**
 * A paired bootstrap's state: the point estimate, then one replicate per `replicate()` call, and the
 * interval of those kept.
 */
function pairedBootstrap(pairs: PairedCondition[], metric: ScalarMetric, seed: number) {
  const n = sameTestRows(pairs);
  // per pair: [masked, original], each laid out once for the metric
  const laid = pairs.map((p) => [
    layOut(p.masked, p.thresholdsMasked, p.operatingMasked ?? p.thresholdsMasked, metric),
    layOut(p.original, p.thresholdsOriginal, p.operatingOriginal ?? p.thresholdsOriginal, metric),
  ]);
  // one condition's per-finding values on the rows drawn w[i] times each: what macroAUROC, macroF1 or
  // meanLabelAccuracy averages
  const perK = new Float64Array(Math.max(0, ...pairs.flatMap((p) => [p.masked.k, p.original.k])));
  const findingValues = (c: Layout, w: Uint32Array): Float64Array => {
    const vs = perK.subarray(0, c.findings.length);
    for (let k = 0; k < c.findings.length; k++)
      vs[k] =
        metric === 'macroAUROC'
          ? aurocWeighted(c.findings[k]!, w)
          : countsWeighted(c.findings[k]!, w, metric);
    return vs;
  };
  // the point estimate: every test row drawn once is computeMetrics on the test set, to the bit
  const once = new Uint32Array(n).fill(1);
  const full = laid.map((cs) =>
    cs.map((c) => {
      if (c.exact) return { value: exactMatchWeighted(c.exact, once), defined: [] as number[] };
      const vs = findingValues(c, once);
      return { value: nanMean(vs), defined: [...vs.keys()].filter((k) => Number.isFinite(vs[k]!)) };
    }),
  );
  const point = nanMean(full.map(([m, o]) => m!.value - o!.value));
  // what the point estimate is made of: each seed's difference and, per model, the findings it averages
  const definedDiff = full.map(([m, o]) => Number.isFinite(m!.value - o!.value));
  const definedFindings = full.map((cs) => cs.map((c) => c.defined));
  // one condition's metric on a replicate, as computeMetrics gives it on the resampled rows; null when
  // a finding it averages on the full set lost its class
  const conditionValue = (c: Layout, w: Uint32Array, defined: number[]): number | null => {
    if (c.exact) return exactMatchWeighted(c.exact, w);
    const vs = findingValues(c, w);
    for (const k of defined) if (!Number.isFinite(vs[k]!)) return null;
    return nanMean(vs);
  };
  const diffs = new Float64Array(pairs.length);
  const diffOf = (w: Uint32Array) => {
    for (let j = 0; j < pairs.length; j++) {
      const m = conditionValue(laid[j]![0]!, w, definedFindings[j]![0]!);
      const o = conditionValue(laid[j]![1]!, w, definedFindings[j]![1]!);
      if (m === null || o === null) return Number.NaN;
      diffs[j] = m - o;
      if (definedDiff[j] && !Number.isFinite(diffs[j]!)) return Number.NaN;
    }
    return nanMean(diffs);
  };
  const rand = mulberry32(seed);
  const ds: number[] = [];
  // a replicate is how often each test row was drawn: no resampled copies, no per-replicate sorts
  const w = new Uint32Array(n);
  return {
    replicate(): void {
      w.fill(0);
      for (let i = 0; i < n; i++) w[Math.floor(rand() * n)]!++;
      const d = diffOf(w);
      if (Number.isFinite(d)) ds.push(d);
    },
    interval(alpha: number): DiffCI {
      ds.sort((a, b) => a - b);
      return {
        metric,
        diff: point,
        lo: quantile(ds, alpha / 2),
        hi: quantile(ds, 1 - alpha / 2),
        samples: ds.length,
      };
    },
  };
}

/**
 * The test-set size every pair shares.
 * @throws {RangeError} a pair's condition has another number of test rows (a replicate's draws would
 *   read past its end).
 */
function sameTestRows(pairs: PairedCondition[]): number {
  const n = pairs[0]!.original.n;
  pairs.forEach((p, j) => {
    for (const [side, a] of [
      ['masked', p.masked],
      ['original', p.original],
    ] as const)
      if (a.n !== n)
        throw new RangeError(
          `pairs[${j}].${side} has ${a.n} test rows, pairs[0].original ${n}: a paired bootstrap needs the same test images in every pair`,
        );
  });
  return n;
}

/** One finding of one condition, ordered once by score for every replicate. */
interface FindingLayout {
  /** The counted rows: ascending score for AUROC, else in row order. */
  rows: Uint32Array;
  /** 1 where that row's label is positive. */
  positive: Uint8Array;
  /** 1 where that row's score is ≥ the metric's threshold. */
  predicted: Uint8Array;
  /** The end (exclusive) of each run of equal scores in `rows`: the tie groups of the mid-ranks (AUROC). */
  groupEnds: Uint32Array;
}

/** One condition laid out for a metric: per-image exact-match states, or one layout per finding. */
interface Layout {
  /** Per test row: 0 no counted label, 1 a counted label wrong, 2 all right (exact match only). */
  exact: Uint8Array | null;
  findings: FindingLayout[];
}

function layOut(a: LabelArrays, thresholds: number[], operating: number[], metric: ScalarMetric): Layout {
  // a counted NaN score is the RangeError computeMetrics gives (same pair, finding and row first)
  for (let k = 0; k < a.k; k++)
    for (let i = 0; i < a.n; i++) {
      const idx = i * a.k + k;
      if (isCounted(a.mask, idx) && Number.isNaN(a.probs[idx]!))
        throw nanScore(`probs[${i}, ${k}] (row ${i}, finding ${k})`);
    }
  if (metric === 'exactMatch') {
    const exact = new Uint8Array(a.n);
    for (let i = 0; i < a.n; i++) exact[i] = exactState(a, thresholds, i);
    return { exact, findings: [] };
  }
  // computeMetrics: accuracy at `thresholds`, F1 at the operating thresholds
  const t = metric === 'macroF1' ? operating : thresholds;
  const findings: FindingLayout[] = [];
  for (let k = 0; k < a.k; k++) {
    const score = new Float64Array(a.n);
    const counted: number[] = [];
    for (let i = 0; i < a.n; i++) {
      score[i] = a.probs[i * a.k + k]!;
      if (isCounted(a.mask, i * a.k + k)) counted.push(i);
    }
    // only AUROC needs the score order; counts read the rows in order, which is also cheaper to gather
    const rows = Uint32Array.from(counted);
    if (metric === 'macroAUROC') rows.sort((p, q) => score[p]! - score[q]!);
    const positive = new Uint8Array(rows.length);
    const predicted = new Uint8Array(rows.length);
    const ends: number[] = [];
    for (let r = 0; r < rows.length; r++) {
      const i = rows[r]!;
      positive[r] = a.labels[i * a.k + k]! > 0.5 ? 1 : 0;
      predicted[r] = score[i]! >= t[k]! ? 1 : 0;
      if (metric === 'macroAUROC' && (r + 1 === rows.length || score[rows[r + 1]!] !== score[i]))
        ends.push(r + 1);
    }
    findings.push({ rows, positive, predicted, groupEnds: Uint32Array.from(ends) });
  }
  return { exact: null, findings };
}

/** `exactMatch` over the rows drawn `w[i]` times each. */
function exactMatchWeighted(exact: Uint8Array, w: Uint32Array): number {
  let ok = 0;
  let tot = 0;
  for (let i = 0; i < exact.length; i++) {
    if (exact[i] === 0) continue;
    tot += w[i]!;
    if (exact[i] === 2) ok += w[i]!;
  }
  return ratio(ok, tot);
}

/**
 * `auroc` over the rows drawn `w[i]` times each: a tie group of W drawn copies starting at 0-based
 * position `below` has the mid-rank (below + below + W − 1) / 2 + 1. Every term is a multiple of ½, so
 * the sums are exact and equal `auroc` on the resampled arrays to the bit.
 */
function aurocWeighted(f: FindingLayout, w: Uint32Array): number {
  let below = 0;
  let pos = 0;
  let rankSumPos = 0;
  let start = 0;
  for (let g = 0; g < f.groupEnds.length; g++) {
    const end = f.groupEnds[g]!;
    let drawn = 0;
    let drawnPos = 0;
    for (let r = start; r < end; r++) {
      const c = w[f.rows[r]!]!;
      drawn += c;
      drawnPos += c * f.positive[r]!;
    }
    if (drawnPos > 0) rankSumPos += drawnPos * ((below + (below + drawn - 1)) / 2 + 1);
    below += drawn;
    pos += drawnPos;
    start = end;
  }
  const neg = below - pos;
  if (pos === 0 || neg === 0) return Number.NaN;
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Scratch confusion counts of countsWeighted (one call at a time: all of this is synchronous). */
const COUNTS = new Float64Array(4);

/** Per-finding accuracy or F1 (at the layout's threshold) over the rows drawn `w[i]` times each. */
function countsWeighted(f: FindingLayout, w: Uint32Array, metric: ScalarMetric): number {
  // indexed by 2·label + prediction instead of branching: tn, fp, fn, tp
  const counts = COUNTS.fill(0);
  for (let r = 0; r < f.rows.length; r++) counts[(f.positive[r]! << 1) | f.predicted[r]!]! += w[f.rows[r]!]!;
  const c = { tn: counts[0]!, fp: counts[1]!, fn: counts[2]!, tp: counts[3]! };
  return metric === 'macroF1' ? f1(c) : accuracy(c);
}
