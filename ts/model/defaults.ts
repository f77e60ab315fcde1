/**
 * Every default of the model layer's options, in one place. The classes fill in each option from here
 * and hand the addon a complete object (it reads strictly and has no defaults of its own); the
 * experiment config (experiment/config.ts) takes the values it shares with the library from here too.
 */
import { NUM_LABELS } from '../common/labels.js';

/** Where a model runs when no device is named: CUDA when present, else the CPU. */
export const DEFAULT_DEVICE = 'auto';

/**
 * The largest learning rate any entry point takes (Classifier.create, Segmenter.load, the run config,
 * the CLI flags). AdamW moves each weight by about lr per step whatever the gradient's size: a step of
 * 1 already scrambles a trained tower, and larger ones (1e308 overflows float32) only train to NaN.
 */
export const MAX_LEARNING_RATE = 1;

/** Classifier.create. */
export const CLASSIFIER_DEFAULTS = {
  numLabels: NUM_LABELS,
  device: DEFAULT_DEVICE,
  /** AdamW learning rate of the image tower (joint fine-tuning). */
  lrEncoder: 1e-5,
  /** AdamW learning rate of the linear head. */
  lrHead: 1e-3,
  weightDecay: 0.01,
  freezeEncoder: false,
  /** 0 = no gradient clipping. */
  gradClip: 0,
  bf16: false,
  seed: 0,
} as const;

/** Segmenter.load. */
export const SEGMENTER_DEFAULTS = {
  device: DEFAULT_DEVICE,
  lr: 1e-3,
  weightDecay: 1e-4,
  /** 0 = no gradient clipping. */
  gradClip: 0,
  bf16: false,
  /** Probability above which a pixel belongs to a structure. */
  threshold: 0.5,
} as const;

/** Classifier.attribute / ClipModel.attribute (docs/attribution.md). */
export const ATTRIBUTION_DEFAULTS = {
  method: 'gradient',
  /** SmoothGrad: noisy copies per image. */
  samples: 16,
  /** SmoothGrad: noise std as a fraction of each image's value range. */
  sigma: 0.15,
  /** Integrated Gradients: midpoint Riemann steps. */
  steps: 32,
  /** Rows per forward/backward pass. */
  batch: 16,
  seed: 0,
  signed: false,
  bf16: false,
  baseline: 'zeros',
} as const;

/**
 * Ceilings on the work one attribution asks for, wherever it is asked (the API, the run config,
 * `cxrmask explain`): IG runs a backward pass per step and SmoothGrad one per sample, for each image.
 * Far above what a map needs (32 and 16 by default), well below what takes hours.
 */
export const ATTRIBUTION_LIMITS = { samples: 1024, steps: 1024 } as const;

/**
 * `cxrmask explain`: the command's own default method. The library defaults to the plain gradient
 * (one backward pass); the command explains with Integrated Gradients, whose map sums to the score's
 * difference from the baseline, and takes its other attribution defaults from ATTRIBUTION_DEFAULTS.
 */
export const EXPLAIN_CLI_DEFAULTS = { method: 'ig' } as const;

/** ProcessGroup.create: the device of the collective tensors. */
export const PROCESS_GROUP_DEFAULTS = { device: 'cpu' } as const;
