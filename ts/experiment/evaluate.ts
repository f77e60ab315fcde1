/**
 * From stored predictions to numbers. For every (model, test variant): per-finding thresholds are
 * chosen on the validation split *of that test variant* (accuracy metrics: `metrics.thresholdRule`;
 * sensitivity/specificity/F1: `metrics.operatingPointRule`), then every metric is computed on the
 * test split. Seeds are aggregated as mean ± sd; masked − original
 * differences get a paired bootstrap 95 % CI over test images (same resample for all seeds).
 */

import { FINDINGS, NUM_LABELS } from '../common/labels.js';
import { meanSd } from '../common/stats.js';
import type { CellResult, PredSet, SplitData, ZeroShotResult } from './cells.js';
import type { ExperimentConfig, Setup, TestVariant, Variant } from './config.js';
import { PREDICTED, VARIANTS } from './config.js';
import {
  bootstrapDiff,
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

export interface EvalCell {
  group: string;
  seed: number | null;
  testVariant: TestVariant;
  thresholds: number[];
  operatingThresholds: number[];
  metrics: MetricSet;
  top1: { accuracy: number; n: number };
}

export interface MeanSdT {
  mean: number;
  sd: number;
  n: number;
}

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

export interface DiffRow extends DiffCI {
  group: string;
  /** What is compared (b − a); absent: masked − original. With config.segmenter also
   * 'masked-pred − original' and 'masked-pred − masked'. */
  contrast?: 'masked-pred − original' | 'masked-pred − masked';
}

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

export function evaluate(
  config: ExperimentConfig,
  sd: SplitData,
  zs: ZeroShotResult | null,
  trained: CellResult[],
): Evaluation {
  const rule = config.metrics.thresholdRule;
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

  const cells: EvalCell[] = [];
  const pairsByGroup = new Map<string, PairedCondition[]>();
  // With predicted masks: per group, pairs (original, masked-pred) and (masked, masked-pred).
  const predPairs = new Map<string, { vsOriginal: PairedCondition[]; vsMasked: PairedCondition[] }>();
  const hasPred = models.some((m) => m.preds.test[PREDICTED] !== undefined);
  const testVariants: TestVariant[] = hasPred ? [...VARIANTS, PREDICTED] : [...VARIANTS];
  for (const m of models) {
    const cond: Partial<Record<TestVariant, { a: LabelArrays; t: number[]; o: number[] }>> = {};
    for (const v of testVariants) {
      if (!m.preds.test[v] || !m.preds.validate[v]) continue;
      const val = labelArrays(m.preds.validate[v]!, sd.validate, sd);
      const test = labelArrays(m.preds.test[v]!, sd.test, sd);
      const thresholds = chooseThresholds(val, rule, config.metrics.fixedThreshold);
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
    const list = pairsByGroup.get(m.group.key) ?? [];
    list.push({
      original: cond.original!.a,
      masked: cond.masked!.a,
      thresholdsOriginal: cond.original!.t,
      thresholdsMasked: cond.masked!.t,
      operatingOriginal: cond.original!.o,
      operatingMasked: cond.masked!.o,
    });
    pairsByGroup.set(m.group.key, list);
    const p = cond[PREDICTED];
    if (p) {
      const pair = (a: { a: LabelArrays; t: number[]; o: number[] }): PairedCondition => ({
        original: a.a,
        masked: p.a,
        thresholdsOriginal: a.t,
        thresholdsMasked: p.t,
        operatingOriginal: a.o,
        operatingMasked: p.o,
      });
      const e = predPairs.get(m.group.key) ?? { vsOriginal: [], vsMasked: [] };
      e.vsOriginal.push(pair(cond.original!));
      e.vsMasked.push(pair(cond.masked!));
      predPairs.set(m.group.key, e);
    }
  }

  const summary: SummaryCell[] = [];
  for (const g of groups.values()) {
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

  const differences: DiffRow[] = [];
  const diffMetrics = [...new Set<ScalarMetric>([config.metrics.primary, 'macroAUROC'])];
  for (const [group, pairs] of pairsByGroup) {
    for (const metric of diffMetrics) {
      const ci = bootstrapDiff(pairs, metric, { iterations: config.metrics.bootstrap, seed: 20240601 });
      differences.push({ group, ...ci });
    }
  }
  for (const [group, e] of predPairs) {
    for (const metric of diffMetrics) {
      const opts = { iterations: config.metrics.bootstrap, seed: 20240601 };
      differences.push({
        group,
        contrast: 'masked-pred − original',
        ...bootstrapDiff(e.vsOriginal, metric, opts),
      });
      differences.push({
        group,
        contrast: 'masked-pred − masked',
        ...bootstrapDiff(e.vsMasked, metric, opts),
      });
    }
  }
  return { groups: [...groups.values()], cells, summary, differences };
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
