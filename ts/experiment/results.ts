/**
 * The shape of a run's results.json, in a module of its own: the reports read it without importing the
 * run (which writes the reports).
 */

import type { DataFingerprint } from '../model/run-files.js';
import type { CellResult } from './cells.js';
import type { ExperimentConfig } from './config.js';
import type { CrossDatasetResult } from './cross-dataset.js';
import type { Evaluation } from './evaluate.js';

import type { GridAttribution } from './grid-attribution.js';
import type { SegmenterQuality } from './segmenter-quality.js';

/** A run's results.json: its config, data, seeds, training histories, zero-shot settings and evaluation. */
export interface Results {
  schema: 1;
  run: {
    dir: string;
    startedAt: string;
    finishedAt: string;
    resumed: boolean;
    reevaluatedAt?: string;
    /** The metric settings `cxrmask eval` set over config.json's (eval-settings.json); config.metrics has them merged. */
    evaluationOverrides?: Partial<ExperimentConfig['metrics']>;
    git: { commit: string | null; dirty: boolean | null };
    versions: Record<string, unknown>;
    /** From model.json: preset, source (e.g. random-init), sizes, export-time torch. */
    model: Record<string, unknown> | null;
    device: string;
    timings: { totalSeconds: number; features: Record<string, number>; cells: Record<string, number> };
  };
  config: ExperimentConfig;
  seeds: number[];
  data: {
    counts: Record<'train' | 'validate' | 'test', number>;
    testPrevalence: Record<string, number>;
    /** meanLabelAccuracy of predicting every finding absent (the trivial baseline). */
    allNegativeMeanLabelAccuracy: number;
    skippedImages: {
      features: Record<string, number>;
      predictions: number;
      /** Left out when the image cache was built, per reason. */
      cache: Record<string, number> | null;
    };
    /** What data the run used (fingerprint.ts); a resume or re-evaluation must see the same. */
    fingerprint: DataFingerprint;
    [k: string]: unknown;
  };
  definitions: Record<string, string>;
  zeroshot: { prompts: string[]; negativePrompts: string[] | null; logitScale: number } | null;
  evaluation: Evaluation;
  training: { id: string; bestEpoch: number | undefined; history: CellResult['history'] }[];
  /** Attribution maps' mass in lungs ∪ heart and in the finding region (config.attribution). */
  attribution?: GridAttribution | null;
  /** With config.segmenter: its quality against CheXmask on the test split, weights and training data. */
  segmenter?: SegmenterQuality | null;
  /** config.test.datasets: Table 2 on each other dataset, thresholds from this run's validation split. */
  testDatasets?: Record<string, CrossDatasetResult>;
}
