/**
 * results.json put together from a run's predictions: the evaluation, the data facts, timings and
 * versions, and the definitions of every number. Shared by a finished run and a re-evaluation.
 */

import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { StopSignal } from '../common/interrupt.js';
import { readJson } from '../common/io.js';
import { packageVersion } from '../common/version.js';
import { readModelMeta } from '../model/meta.js';
import type { DataFingerprint } from '../model/run-files.js';
import { packageRoot } from '../native.js';
import type { Backend, CacheLike } from './backend.js';
import type { CellResult, SplitData, ZeroShotResult } from './cells.js';
import { type ExperimentConfig, VARIANTS } from './config.js';
import { evaluate, testPrevalence } from './evaluate.js';
import type { Results } from './results.js';

/**
 * How the thresholds were chosen, with this scoring's rules and the threshold a finding with one class
 * on validation falls back to (metrics.fixedThreshold, under every rule: chooseThreshold).
 */
function thresholdsDefinition(m: ExperimentConfig['metrics']): string {
  return (
    'Per-finding thresholds are chosen on the validation split of the same test variant (original or masked). ' +
    `Accuracy metrics (meanLabelAccuracy, exactMatch) use t_k from config.metrics.thresholdRule (here ${m.thresholdRule}; default accuracy: the threshold maximising that finding's validation accuracy); ` +
    `sensitivity, specificity and F1 use the operating point o_k from config.metrics.operatingPointRule (here ${m.operatingPointRule}; default youden: max sensitivity+specificity-1). ` +
    'Other rules: f1, fixed (config.metrics.fixedThreshold). Candidates are midpoints between distinct validation scores; ties go to the threshold closest to 0.5; ' +
    `a finding with one class among its validation labels gets config.metrics.fixedThreshold, here ${m.fixedThreshold}, under every rule.`
  );
}

/** results.json's `definitions`: every number's meaning, with the threshold settings it was scored with. */
export function definitions(metrics: ExperimentConfig['metrics']): Record<string, string> {
  return {
    meanLabelAccuracy:
      "The paper's 'accuracy averaged across the five findings': for each finding k, acc_k = fraction of test images (label not ignored) whose thresholded prediction 1[p_k >= t_k] equals the label; the mean of acc_k over the five findings.",
    thresholds: thresholdsDefinition(metrics),
    exactMatch:
      'Fraction of test images whose thresholded predictions match the labels on every non-ignored finding.',
    macroAUROC:
      'Mean over findings of ROC AUC (Mann-Whitney, mid-ranks for ties); a finding with only one class among its non-ignored test labels has AUROC undefined (null) and is left out of the mean.',
    sensitivity:
      'TP/(TP+FN) at the operating point o_k; specificity TN/(TN+FP); F1 2TP/(2TP+FP+FN); null when the denominator is 0.',
    top1Accuracy:
      '5-way top-1 accuracy: over test images with exactly one positive finding (and no ignored label), the fraction whose highest-scoring finding is the positive one (chance 0.2).',
    difference:
      'masked - original on the test split for the same trained models (mean over seeds); 95% CI by paired bootstrap over test images (the same resampled images for both variants and all seeds).',
    zeroshotPerFinding:
      'P(k) = softmax over {positive prompt, negative prompt} of exp(logit_scale)*cosine(image, text), first component; without a negative prompt, sigmoid of the scaled cosine.',
    zeroshotSoftmax5: 'P = softmax over the five positive prompts of exp(logit_scale)*cosine(image, text).',
    aggregation: 'mean ± sample sd (n-1) over seeds; zero-shot is deterministic (one run).',
  };
}

/**
 * cxrmask's own commit and dirty flag, or nulls when `root` is not itself the top of a git checkout: an
 * installed copy sits inside the consumer's repository, whose HEAD git would otherwise report as ours.
 */
export function gitInfo(root: string = packageRoot): { commit: string | null; dirty: boolean | null } {
  const git = (args: string[]) =>
    execFileSync('git', args, { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  try {
    if (realpathSync(git(['rev-parse', '--show-toplevel'])) !== realpathSync(root))
      return { commit: null, dirty: null };
    const commit = git(['rev-parse', 'HEAD']);
    const dirty = git(['status', '--porcelain', '--untracked-files=no']).length > 0;
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: null };
  }
}

/** What results.json shows under data.cache when the data step gave no summary (e.g. a resume). */
export function cacheFacts(cache: CacheLike): Record<string, unknown> {
  return {
    dir: cache.dir ?? null,
    key: cache.key ?? null,
    entries: cache.entries.length,
    skipped: cache.skipped ?? null,
    // kept in the run's data.json: a cell served after its cache is deleted still draws its contours
    contour: cache.contour ? { thickness: cache.contour.thickness, source: cache.contour.source } : null,
    // and the preprocessing it made the images with (a paper-preset cache squashes, with ImageNet stats)
    preprocess: cache.preprocess ?? null,
    // and the decoder revision that made them (an older one may decode some images otherwise)
    decoder: cache.decoder ?? null,
  };
}

/** The model.json fields results.json records; null when the folder has none (e.g. a fake backend). */
function modelFacts(dir: string): Record<string, unknown> | null {
  if (!existsSync(join(dir, 'model.json'))) return null;
  const m = readModelMeta(dir);
  const keep = ['preset', 'source', 'seed', 'embedDim', 'imageSize', 'contextLength', 'torchVersion'];
  return { dir, ...Object.fromEntries(keep.filter((k) => k in m).map((k) => [k, m[k]])) };
}

/** The run folder and its results. */
export interface RunResult {
  runDir: string;
  results: Results;
}

/** What results.json is made from: the run's settings and data, and every model's predictions. */
export interface RunRecord {
  config: ExperimentConfig;
  runDir: string;
  started: Date;
  resumed: boolean;
  backend: Backend;
  device: string;
  sd: SplitData;
  zs: ZeroShotResult | null;
  trained: CellResult[];
  cache: CacheLike;
  /** Stops the bootstrap at its next replicate (Ctrl-C). */
  signal?: StopSignal;
  fingerprint: DataFingerprint;
  extra?: Record<string, unknown>;
}

/** Seconds and skipped images of each variant's feature pass, from features/<variant>.json. */
function featureFacts(runDir: string): { seconds: Record<string, number>; skipped: Record<string, number> } {
  const seconds: Record<string, number> = {};
  const skipped: Record<string, number> = {};
  for (const v of VARIANTS) {
    const m = readJson<{ seconds: number; failed: number[] }>(join(runDir, 'features', `${v}.json`));
    if (m) {
      seconds[v] = m.seconds;
      skipped[v] = m.failed.length;
    }
  }
  return { seconds, skipped };
}

/** Seconds per cell, zero-shot first. */
function cellSeconds(zs: ZeroShotResult | null, trained: CellResult[]): Record<string, number> {
  const cellTimes: Record<string, number> = {};
  if (zs) cellTimes['zeroshot'] = zs.seconds;
  for (const c of trained) cellTimes[c.id] = c.seconds;
  return cellTimes;
}

/** Scores the predictions and puts results.json together: a finished run and a re-evaluation alike. */
export async function assembleResults(a: RunRecord): Promise<Results> {
  const { sd } = a;
  const evaluation = await evaluate(a.config, sd, a.zs, a.trained, a.signal);
  const { prevalence, allNegative } = testPrevalence(sd);
  const features = featureFacts(a.runDir);
  let predSkipped = 0;
  for (const c of a.trained)
    predSkipped += c.predictions.test.original.failed.length + c.predictions.test.masked.failed.length;
  const finished = new Date();
  return {
    schema: 1,
    run: {
      dir: a.runDir,
      startedAt: a.started.toISOString(),
      finishedAt: finished.toISOString(),
      resumed: a.resumed,
      git: gitInfo(),
      versions: { cxrmask: packageVersion(), node: process.version, ...a.backend.versions() },
      model: modelFacts(a.config.model.dir),
      device: a.device,
      timings: {
        totalSeconds: (finished.getTime() - a.started.getTime()) / 1000,
        features: features.seconds,
        cells: cellSeconds(a.zs, a.trained),
      },
    },
    config: a.config,
    seeds: a.config.seeds,
    data: {
      counts: { train: sd.train.length, validate: sd.validate.length, test: sd.test.length },
      testPrevalence: prevalence,
      allNegativeMeanLabelAccuracy: allNegative,
      skippedImages: {
        features: features.skipped,
        predictions: predSkipped,
        cache: a.cache.skipped?.counts ?? null,
      },
      ...(a.extra ?? {}),
      fingerprint: a.fingerprint,
    },
    definitions: definitions(a.config.metrics),
    zeroshot: a.zs
      ? { prompts: a.zs.prompts, negativePrompts: a.zs.negativePrompts, logitScale: a.zs.logitScale }
      : null,
    evaluation,
    training: a.trained.map((c) => ({ id: c.id, bestEpoch: c.bestEpoch, history: c.history })),
  };
}
