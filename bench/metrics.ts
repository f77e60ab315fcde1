/**
 * What the metrics cost at real validation and test sizes, on one core:
 * - threshold choice: chooseThresholds (5 findings, Youden's J) plus computeMetrics, the validation
 *   step every training epoch runs, at NIH14's (8,839), CheXpert's (19,118) and MIMIC `--split patient`'s
 *   (24,333) validation sizes;
 * - one paired-bootstrap replicate (3 seeds × masked/original × 5 findings) at MIMIC's official frontal
 *   test size (3,400) and NIH14's test_list (25,596): timed at 5 and `--replicates` iterations, so the
 *   slope is the replicate and the intercept the one-off setup;
 * - evaluate() of the default grid (2 zero-shot protocols + LP/JFT × original/masked × 3 seeds, 28
 *   scored cells, 12 bootstraps) at NIH14's validate/test sizes, with `metrics.bootstrap` 0 and B.
 * Scores are float32 like a model's, 30 % positives, 10 % of the labels masked (U-Ignore). Times are
 * CPU milliseconds / seconds of this process (all of it is synchronous work on the main thread).
 *
 *   node --import tsx bench/metrics.ts [--bootstrap 100] [--replicates 200] [--quick]
 */
import { parseArgs } from 'node:util';
import { mulberry32 } from '../ts/common/random.js';
import type { CellResult, PredGrid, SplitData, ZeroShotResult } from '../ts/experiment/cells.js';
import { parseConfig } from '../ts/experiment/config.js';
import { evaluate } from '../ts/experiment/evaluate.js';
import {
  bootstrapDiff,
  chooseThresholds,
  computeMetrics,
  type LabelArrays,
  type PairedCondition,
} from '../ts/experiment/metrics.js';
import { median } from './common.js';

const { values: opt } = parseArgs({
  options: {
    bootstrap: { type: 'string', default: '100' },
    replicates: { type: 'string', default: '200' },
    quick: { type: 'boolean', default: false },
  },
});
const K = 5;
const quick = opt.quick;
const bootstrap = Number(opt.bootstrap);
const r = mulberry32(7);

function labelArrays(n: number): LabelArrays {
  const probs = new Float32Array(n * K);
  const labels = new Float32Array(n * K);
  const mask = new Float32Array(n * K);
  for (let i = 0; i < n * K; i++) {
    labels[i] = r() < 0.3 ? 1 : 0;
    probs[i] = Math.min(1, labels[i]! * 0.25 + r() * 0.75);
    mask[i] = r() < 0.9 ? 1 : 0;
  }
  return { probs, labels, mask, n, k: K };
}

// CPU time of this process (user + system), not wall time: the numbers hold on a shared, loaded machine
const ms = (f: () => unknown) => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
const line = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

for (const n of quick ? [8839] : [8839, 19118, 24333]) {
  const va = labelArrays(n);
  const times = [0, 1, 2].map(() => ms(() => computeMetrics(va, chooseThresholds(va, 'youden'))));
  line({ step: 'epoch validation metrics', n, cpuMs: +median(times).toFixed(1) });
}

for (const n of quick ? [3400] : [3400, 25596]) {
  const pairs: PairedCondition[] = [0, 1, 2].map(() => ({
    original: labelArrays(n),
    masked: labelArrays(n),
    thresholdsOriginal: [0.5, 0.5, 0.5, 0.5, 0.5],
    thresholdsMasked: [0.5, 0.5, 0.5, 0.5, 0.5],
  }));
  for (const metric of ['macroAUROC', 'meanLabelAccuracy'] as const) {
    const [few, many] = [5, quick ? 50 : Number(opt.replicates)];
    const tFew = median([0, 1, 2].map(() => ms(() => bootstrapDiff(pairs, metric, { iterations: few }))));
    const tMany = ms(() => bootstrapDiff(pairs, metric, { iterations: many }));
    const perReplicate = (tMany - tFew) / (many - few);
    line({
      step: 'bootstrap replicate',
      n,
      metric,
      cpuMsPerReplicate: +perReplicate.toFixed(2),
      setupCpuMs: +(tFew - few * perReplicate).toFixed(0),
    });
  }
}

// evaluate() on the default grid's models, as `run` and `eval` call it at the end
const [nVal, nTest] = quick ? [2000, 3400] : [8839, 25596];
const N = nVal + nTest;
const all = labelArrays(N);
const validate = Array.from({ length: nVal }, (_, i) => i);
const test = Array.from({ length: nTest }, (_, i) => nVal + i);
const sd: SplitData = {
  train: [],
  validate,
  test,
  labels: all.labels as Float32Array,
  labelMask: all.mask as Float32Array,
};
const preds = (rows: number[]) => ({
  probs: rows.flatMap((i) =>
    Array.from({ length: K }, (_, k) => Math.min(1, all.labels[i * K + k]! * 0.25 + r() * 0.75)),
  ),
  failed: [],
});
const grid = (): PredGrid => ({
  validate: { original: preds(validate), masked: preds(validate) },
  test: { original: preds(test), masked: preds(test) },
});
const zs: ZeroShotResult = {
  id: 'zeroshot',
  prompts: [],
  negativePrompts: null,
  logitScale: 100,
  protocols: { 'per-finding': grid(), 'softmax-5way': grid() },
  seconds: 0,
  finishedAt: '',
};
const trained: CellResult[] = [];
for (const setup of ['linear-probe', 'finetune'] as const)
  for (const v of ['original', 'masked'] as const)
    for (const seed of [0, 1, 2])
      trained.push({
        id: `${setup}-${v}-${seed}`,
        setup,
        trainVariant: v,
        seed,
        predictions: grid(),
        seconds: 0,
        device: 'cpu',
        finishedAt: '',
      });
for (const b of [0, bootstrap]) {
  const config = parseConfig({ data: { cache: 'bench/out/no-cache' }, metrics: { bootstrap: b } });
  // evaluate() yields to the event loop now and then; CPU time still counts only its work
  const c0 = process.cpuUsage();
  await evaluate(config, sd, zs, trained);
  const c = process.cpuUsage(c0);
  const s = (c.user + c.system) / 1e6;
  line({ step: 'evaluate (default grid)', nVal, nTest, bootstrap: b, cpuSeconds: +s.toFixed(2) });
}
