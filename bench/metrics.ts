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
 * The first two are also timed with scikit-learn as a Python user would write them (roc_curve for
 * Youden's J plus roc_auc_score, f1_score and recall_score per finding; a bootstrap replicate as
 * roc_auc_score or accuracy on `rng.integers` rows per seed, condition and finding), CPU time of the
 * same shapes in the project's venv, and `vsSklearn` = sklearn's time ÷ ours.
 *
 *   node --import tsx bench/metrics.ts [--bootstrap 100] [--replicates 200] [--quick]
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../ts/common/random.js';
import { parseConfig } from '../ts/experiment/config.js';
import { evaluate } from '../ts/experiment/evaluate.js';
import {
  bootstrapDiff,
  chooseThresholds,
  computeMetrics,
  type LabelArrays,
  type PairedCondition,
} from '../ts/experiment/metrics.js';
import { benchPython, median } from './common.js';
import { storedGrid } from './stored-grid.js';

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

/** The same steps in scikit-learn: CPU ms of one epoch's validation metrics and of one replicate. */
const SKLEARN = `
import json, sys, time
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve, f1_score, recall_score, accuracy_score
K = 5
rng = np.random.default_rng(7)
def arrays(n):
    y = rng.random((n, K)) < 0.3
    s = np.minimum(1, y * 0.25 + rng.random((n, K)) * 0.75).astype(np.float32)
    return s, y, rng.random((n, K)) < 0.9
def cpu_ms(f, repeat=3):
    ts = []
    for _ in range(repeat):
        t0 = time.process_time(); f(); ts.append((time.process_time() - t0) * 1000)
    return float(np.median(ts))
def epoch(s, y, m):
    for k in range(K):
        sk, yk = s[m[:, k], k], y[m[:, k], k]
        fpr, tpr, th = roc_curve(yk, sk)
        t = th[np.argmax(tpr - fpr)]
        p = sk >= t
        roc_auc_score(yk, sk); f1_score(yk, p); recall_score(yk, p); recall_score(~yk, ~p); accuracy_score(yk, p)
def replicate(pairs, metric, n):
    idx = rng.integers(0, n, n)
    for conds in pairs:
        for s, y, m in conds:
            for k in range(K):
                mk = m[idx, k]
                sk, yk = s[idx, k][mk], y[idx, k][mk]
                if metric == 'macroAUROC': roc_auc_score(yk, sk)
                else: accuracy_score(yk, sk >= 0.5)
job = json.load(sys.stdin)
out = {'epoch': {}, 'replicate': {}}
for n in job['epoch']:
    a = arrays(n)
    out['epoch'][str(n)] = cpu_ms(lambda: epoch(*a))
for n in job['replicate']:
    pairs = [[arrays(n), arrays(n)] for _ in range(3)]
    for metric in ('macroAUROC', 'meanLabelAccuracy'):
        out['replicate'][f'{n} {metric}'] = cpu_ms(lambda: replicate(pairs, metric, n), 5)
out['version'] = __import__('sklearn').__version__
print(json.dumps(out))
`;
const epochSizes = quick ? [8839] : [8839, 19118, 24333];
const replicateSizes = quick ? [3400] : [3400, 25596];
const sk = (() => {
  const { python } = benchPython('sklearn');
  const r = spawnSync(python, ['-c', SKLEARN], {
    input: JSON.stringify({ epoch: epochSizes, replicate: replicateSizes }),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`the scikit-learn run failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as {
    epoch: Record<string, number>;
    replicate: Record<string, number>;
    version: string;
  };
})();
const vs = (theirs: number | undefined, ours: number) =>
  theirs === undefined ? null : +(theirs / ours).toFixed(1);

for (const n of epochSizes) {
  const va = labelArrays(n);
  const times = [0, 1, 2].map(() => ms(() => computeMetrics(va, chooseThresholds(va, 'youden'))));
  const cpuMs = median(times);
  const sklearnCpuMs = sk.epoch[String(n)]!;
  line({
    step: 'epoch validation metrics',
    n,
    cpuMs: +cpuMs.toFixed(1),
    sklearnCpuMs: +sklearnCpuMs.toFixed(1),
    vsSklearn: vs(sklearnCpuMs, cpuMs),
    sklearn: sk.version,
  });
}

for (const n of replicateSizes) {
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
    const sklearnCpuMs = sk.replicate[`${n} ${metric}`];
    line({
      step: 'bootstrap replicate',
      n,
      metric,
      cpuMsPerReplicate: +perReplicate.toFixed(2),
      setupCpuMs: +(tFew - few * perReplicate).toFixed(0),
      sklearnCpuMsPerReplicate: sklearnCpuMs === undefined ? null : +sklearnCpuMs.toFixed(1),
      vsSklearn: vs(sklearnCpuMs, perReplicate),
    });
  }
}

// evaluate() on the default grid's models, as `run` and `eval` call it at the end
const [nVal, nTest] = quick ? [2000, 3400] : [8839, 25596];
const all = labelArrays(nVal + nTest);
const cells = (['linear-probe', 'finetune'] as const).flatMap((setup) =>
  (['original', 'masked'] as const).flatMap((trainVariant) =>
    [0, 1, 2].map((seed) => ({ setup, trainVariant, seed })),
  ),
);
const { sd, zs, trained } = storedGrid({
  nVal,
  nTest,
  labels: all.labels as Float32Array,
  labelMask: all.mask as Float32Array,
  k: K,
  score: (label) => Math.min(1, label * 0.25 + r() * 0.75),
  cells,
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
