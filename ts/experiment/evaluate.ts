/**
 * From stored predictions to numbers. For every (model, test variant): per-finding thresholds are
 * chosen on the validation split *of that test variant* (accuracy metrics: `metrics.thresholdRule`;
 * sensitivity/specificity/F1: `metrics.operatingPointRule`), then every metric is computed on the
 * test split. Seeds are aggregated as mean ± sd; masked − original
 * differences get a paired bootstrap 95 % CI over test images (same resample for all seeds).
 */

import { finishStepsInTurns, type Steps, type StopSignal } from '../common/interrupt.js';
import { FINDINGS, NUM_LABELS } from '../common/labels.js';
import { meanSd } from '../common/stats.js';
import type { CellResult, PredSet, SplitData, ZeroShotResult } from './cells.js';
import type { ExperimentConfig, Setup, TestVariant, Variant } from './config.js';
import { PREDICTED, VARIANTS } from './config.js';
import {
  bootstrapDiffSteps,
  chooseThresholds,
  computeMetrics,
  type DiffCI,
  type LabelArrays,
  type MetricSet,
  type PairedCondition,
  type ScalarMetric,
  top1Accuracy,
} from './metrics.js';

export const SCALARS = [
  'meanLabelAccuracy',
  'exactMatch',
  'macroAUROC',
  'macroSensitivity',
  'macroSpecificity',
  'macroF1',
  'top1Accuracy',
] as const;
export type Scalar = (typeof SCALARS)[number];

export const METRIC_LABELS: Record<Scalar, string> = {
  meanLabelAccuracy: 'Mean per-finding accuracy',
  exactMatch: 'Exact-match accuracy',
  macroAUROC: 'Macro AUROC',
  macroSensitivity: 'Macro sensitivity',
  macroSpecificity: 'Macro specificity',
  macroF1: 'Macro F1',
  top1Accuracy: '5-way top-1 accuracy',
};

/** A row of Table 2: one setup (+ zero-shot protocol) and one training variant. */
export interface GroupKey {
  key: string;
  setup: Setup;
  protocol: string;
  trainVariant: Variant | 'none';
  label: string;
}

/** One model (group and seed) on one test variant: its thresholds and metrics. */
export interface EvalCell {
  group: string;
  seed: number | null;
  testVariant: TestVariant;
  thresholds: number[];
  operatingThresholds: number[];
  metrics: MetricSet;
  top1: { accuracy: number; n: number };
}

/** Mean and standard deviation of a metric over `n` seeds. */
export interface MeanSdT {
  mean: number;
  sd: number;
  n: number;
}

/** A Table 2 cell: one group on one test variant, over its seeds. */
export interface SummaryCell {
  group: string;
  testVariant: TestVariant;
  seeds: number;
  metrics: Record<Scalar, MeanSdT>;
  perLabel: {
    finding: string;
    auroc: MeanSdT;
    accuracy: MeanSdT;
    f1: MeanSdT;
    sensitivity: MeanSdT;
    specificity: MeanSdT;
  }[];
}

/** A paired difference between test variants of one group, with its bootstrap interval. */
export interface DiffRow extends DiffCI {
  group: string;
  /** What is compared (b − a); absent: masked − original. With config.segmenter also
   * 'masked-pred − original' and 'masked-pred − masked'. */
  contrast?: 'masked-pred − original' | 'masked-pred − masked';
}

/** A run's evaluation: the groups (Table 2 rows), every cell, their summaries and the paired differences. */
export interface Evaluation {
  groups: GroupKey[];
  cells: EvalCell[];
  summary: SummaryCell[];
  differences: DiffRow[];
}

export function groupKey(setup: Setup, trainVariant: Variant | 'none', protocol = ''): GroupKey {
  const key = setup === 'zeroshot' ? `zeroshot/${protocol}` : `${setup}/${trainVariant}`;
  const name =
    setup === 'zeroshot' ? 'Zero-shot' : setup === 'linear-probe' ? 'Linear probing' : 'Joint fine-tuning';
  const label = setup === 'zeroshot' ? `${name} (${protocol})` : `${name}, trained on ${trainVariant}`;
  return { key, setup, protocol: setup === 'zeroshot' ? protocol : '', trainVariant, label };
}

/** Labels for `idx`, with rows whose prediction is missing (unreadable image) ignored. */
export function labelArrays(pred: PredSet, idx: number[], sd: SplitData): LabelArrays {
  const k = NUM_LABELS;
  const labels = new Float32Array(idx.length * k);
  const mask = new Float32Array(idx.length * k);
  idx.forEach((row, j) => {
    for (let c = 0; c < k; c++) {
      labels[j * k + c] = sd.labels[row * k + c]!;
      const p = pred.probs[j * k + c];
      mask[j * k + c] = p === null || p === undefined || !Number.isFinite(p) ? 0 : sd.labelMask[row * k + c]!;
    }
  });
  const probs = Float32Array.from(pred.probs, (p) => (p === null || !Number.isFinite(p) ? 0 : p));
  return { probs, labels, mask, n: idx.length, k };
}

interface ModelPreds {
  group: GroupKey;
  seed: number | null;
  preds: CellResult['predictions'];
}

/** One model on one test variant: its test labels and the thresholds chosen on validation. */
interface Condition {
  a: LabelArrays;
  t: number[];
  o: number[];
}

/** Predictions with predicted masks: per group, pairs (original, masked-pred) and (masked, masked-pred). */
interface PredictedPairs {
  vsOriginal: PairedCondition[];
  vsMasked: PairedCondition[];
}

/** The models to score, in table order (zero-shot protocols, then LP and JFT by training variant). */
function modelsOf(
  zs: ZeroShotResult | null,
  trained: CellResult[],
): { models: ModelPreds[]; groups: Map<string, GroupKey> } {
  const models: ModelPreds[] = [];
  const groups = new Map<string, GroupKey>();
  if (zs) {
    for (const p of ['per-finding', 'softmax-5way'] as const) {
      const g = groupKey('zeroshot', 'none', p);
      groups.set(g.key, g);
      models.push({ group: g, seed: null, preds: zs.protocols[p] });
    }
  }
  for (const setup of ['linear-probe', 'finetune'] as const) {
    for (const v of VARIANTS) {
      const cs = trained.filter((c) => c.setup === setup && c.trainVariant === v);
      if (!cs.length) continue;
      const g = groupKey(setup, v);
      groups.set(g.key, g);
      for (const c of cs) models.push({ group: g, seed: c.seed, preds: c.predictions });
    }
  }
  return { models, groups };
}

/** Scores one model on every test variant it has predictions for; thresholds come from its validation split. */
function scoreModel(
  config: ExperimentConfig,
  sd: SplitData,
  m: ModelPreds,
  testVariants: TestVariant[],
): { cells: EvalCell[]; cond: Partial<Record<TestVariant, Condition>> } {
  const cells: EvalCell[] = [];
  const cond: Partial<Record<TestVariant, Condition>> = {};
  for (const v of testVariants) {
    if (!m.preds.test[v] || !m.preds.validate[v]) continue;
    const val = labelArrays(m.preds.validate[v]!, sd.validate, sd);
    const test = labelArrays(m.preds.test[v]!, sd.test, sd);
    const thresholds = chooseThresholds(val, config.metrics.thresholdRule, config.metrics.fixedThreshold);
    const operatingThresholds = chooseThresholds(
      val,
      config.metrics.operatingPointRule,
      config.metrics.fixedThreshold,
    );
    cells.push({
      group: m.group.key,
      seed: m.seed,
      testVariant: v,
      thresholds,
      operatingThresholds,
      metrics: computeMetrics(test, thresholds, undefined, operatingThresholds),
      top1: top1Accuracy(test),
    });
    cond[v] = { a: test, t: thresholds, o: operatingThresholds };
  }
  return { cells, cond };
}

/** `a` as the original side and `b` as the masked side of a paired comparison. */
function paired(a: Condition, b: Condition): PairedCondition {
  return {
    original: a.a,
    masked: b.a,
    thresholdsOriginal: a.t,
    thresholdsMasked: b.t,
    operatingOriginal: a.o,
    operatingMasked: b.o,
  };
}

/** Mean ± sd over seeds of every scalar and per-finding metric, per (group, test variant). */
function summarize(
  groups: Iterable<GroupKey>,
  cells: EvalCell[],
  testVariants: TestVariant[],
): SummaryCell[] {
  const summary: SummaryCell[] = [];
  for (const g of groups) {
    for (const v of testVariants) {
      const cs = cells.filter((c) => c.group === g.key && c.testVariant === v);
      if (!cs.length) continue;
      const metrics = {} as Record<Scalar, MeanSdT>;
      for (const s of SCALARS) {
        metrics[s] = meanSd(cs.map((c) => (s === 'top1Accuracy' ? c.top1.accuracy : c.metrics[s])));
      }
      const perLabel = FINDINGS.map((finding, k) => ({
        finding,
        auroc: meanSd(cs.map((c) => c.metrics.perLabel[k]!.auroc)),
        accuracy: meanSd(cs.map((c) => c.metrics.perLabel[k]!.accuracy)),
        f1: meanSd(cs.map((c) => c.metrics.perLabel[k]!.f1)),
        sensitivity: meanSd(cs.map((c) => c.metrics.perLabel[k]!.sensitivity)),
        specificity: meanSd(cs.map((c) => c.metrics.perLabel[k]!.specificity)),
      }));
      summary.push({ group: g.key, testVariant: v, seeds: cs.length, metrics, perLabel });
    }
  }
  return summary;
}

/**
 * Paired bootstrap CIs: masked − original per group, then (with predicted masks) masked-pred against
 * both. One fixed seed, so every contrast resamples the same test images.
 */
function* differenceSteps(
  config: ExperimentConfig,
  pairsByGroup: Map<string, PairedCondition[]>,
  predPairs: Map<string, PredictedPairs>,
): Steps<DiffRow[]> {
  const differences: DiffRow[] = [];
  const diffMetrics = [...new Set<ScalarMetric>([config.metrics.primary, 'macroAUROC'])];
  const opts = { iterations: config.metrics.bootstrap, seed: 20240601 };
  for (const [group, pairs] of pairsByGroup) {
    for (const metric of diffMetrics) {
      differences.push({ group, ...(yield* bootstrapDiffSteps(pairs, metric, opts)) });
    }
  }
  for (const [group, e] of predPairs) {
    for (const metric of diffMetrics) {
      differences.push({
        group,
        contrast: 'masked-pred − original',
        ...(yield* bootstrapDiffSteps(e.vsOriginal, metric, opts)),
      });
      differences.push({
        group,
        contrast: 'masked-pred − masked',
        ...(yield* bootstrapDiffSteps(e.vsMasked, metric, opts)),
      });
    }
  }
  return differences;
}

/**
 * Scores every model's stored predictions (thresholds from validation, metrics on test, per group
 * and test variant) and the paired bootstrap differences.
 * @throws {InterruptedError} (rejects) `signal` was stopped during the bootstrap.
 */
export async function evaluate(
  config: ExperimentConfig,
  sd: SplitData,
  zs: ZeroShotResult | null,
  trained: CellResult[],
  signal?: StopSignal,
): Promise<Evaluation> {
  const { models, groups } = modelsOf(zs, trained);
  const cells: EvalCell[] = [];
  const pairsByGroup = new Map<string, PairedCondition[]>();
  const predPairs = new Map<string, PredictedPairs>();
  const hasPred = models.some((m) => m.preds.test[PREDICTED] !== undefined);
  const testVariants: TestVariant[] = hasPred ? [...VARIANTS, PREDICTED] : [...VARIANTS];
  for (const m of models) {
    const scored = scoreModel(config, sd, m, testVariants);
    cells.push(...scored.cells);
    const { original, masked, [PREDICTED]: pred } = scored.cond;
    const list = pairsByGroup.get(m.group.key) ?? [];
    list.push(paired(original!, masked!));
    pairsByGroup.set(m.group.key, list);
    if (pred) {
      const e = predPairs.get(m.group.key) ?? { vsOriginal: [], vsMasked: [] };
      e.vsOriginal.push(paired(original!, pred));
      e.vsMasked.push(paired(masked!, pred));
      predPairs.set(m.group.key, e);
    }
  }
  return {
    groups: [...groups.values()],
    cells,
    summary: summarize(groups.values(), cells, testVariants),
    // tens of seconds at NIH14's test size: a Ctrl-C is answered between replicates
    differences: await finishStepsInTurns(
      differenceSteps(config, pairsByGroup, predPairs),
      signal,
      'interrupted while computing the bootstrap intervals',
    ),
  };
}

/** Per-finding prevalence on the test split, and the mean per-finding accuracy of predicting all absent. */
export function testPrevalence(sd: SplitData): { prevalence: Record<string, number>; allNegative: number } {
  const prevalence: Record<string, number> = {};
  const K = NUM_LABELS;
  FINDINGS.forEach((f, k) => {
    let pos = 0;
    let cnt = 0;
    for (const i of sd.test) {
      if (sd.labelMask[i * K + k]! > 0.5) {
        cnt++;
        if (sd.labels[i * K + k]! > 0.5) pos++;
      }
    }
    prevalence[f] = cnt ? pos / cnt : Number.NaN;
  });
  const prev = Object.values(prevalence).filter(Number.isFinite);
  const allNegative = prev.length ? 1 - prev.reduce((x, y) => x + y, 0) / prev.length : Number.NaN;
  return { prevalence, allNegative };
}
