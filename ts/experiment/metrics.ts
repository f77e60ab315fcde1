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
  const sorted = Array.from(s).sort((a, b) => a - b);
  const cands: number[] = [];
  cands.push(sorted[0]! - 1e-6);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] !== sorted[i - 1]) cands.push((sorted[i]! + sorted[i - 1]!) / 2);
  }
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

/** Per-label thresholds chosen on a validation set. */
export function chooseThresholds(val: LabelArrays, rule: ThresholdRule, fixed = 0.5): number[] {
  const out: number[] = [];
  for (let k = 0; k < val.k; k++) {
    const { s, y } = column(val, k);
    out.push(chooseThreshold(s, y, rule, fixed));
  }
  return out;
}

/** Fraction of images (with ≥ 1 counted label) whose thresholded predictions match on all counted labels. */
export function exactMatch(a: LabelArrays, thresholds: number[], rows?: ArrayLike<number>): number {
  let ok = 0;
  let tot = 0;
  const m = rows ? rows.length : a.n;
  for (let r = 0; r < m; r++) {
    const i = rows ? rows[r]! : r;
    let any = false;
    let all = true;
    for (let k = 0; k < a.k; k++) {
      const idx = i * a.k + k;
      if (!isCounted(a.mask, idx)) continue;
      any = true;
      if (a.probs[idx]! >= thresholds[k]! !== a.labels[idx]! > 0.5) all = false;
    }
    if (any) {
      tot++;
      if (all) ok++;
    }
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

/** The per-finding value each macro metric averages (exact match has none: it is one ratio over images). */
const PER_FINDING: Partial<Record<ScalarMetric, 'auroc' | 'f1' | 'accuracy'>> = {
  macroAUROC: 'auroc',
  macroF1: 'f1',
  meanLabelAccuracy: 'accuracy',
};

/**
 * Paired bootstrap 95 % CI of (masked − original) for a scalar metric, averaged over `pairs` (the seeds),
 * which must share the same test images (same n and row order). Each replicate resamples test images
 * with replacement once and applies the same rows to every pair and both conditions. A replicate in
 * which a value defined on the full test set becomes undefined is dropped — a finding that lost a class
 * (its AUROC or F1 left out of the macro mean would change what is averaged, e.g. a single-positive
 * finding), or a seed's difference; `samples` counts the kept ones.
 */
export function bootstrapDiff(
  pairs: PairedCondition[],
  metric: ScalarMetric,
  { iterations = 1000, seed = 12345, alpha = 0.05 } = {},
): DiffCI {
  const perFinding = PER_FINDING[metric];
  // per pair: [masked, original] metrics on these rows
  const scored = (rows?: ArrayLike<number>) =>
    pairs.map((p) => [
      computeMetrics(p.masked, p.thresholdsMasked, rows, p.operatingMasked ?? p.thresholdsMasked),
      computeMetrics(p.original, p.thresholdsOriginal, rows, p.operatingOriginal ?? p.thresholdsOriginal),
    ]);
  const full = scored();
  const point = nanMean(full.map(([m, o]) => m![metric] - o![metric]));
  if (pairs.length === 0) return { metric, diff: Number.NaN, lo: Number.NaN, hi: Number.NaN, samples: 0 };
  // what the point estimate is made of: each seed's difference and, per model, the findings it averages
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
