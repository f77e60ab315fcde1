/**
 * Attribution options and results (the addon computes them: native/attribution.h). Which input pixels
 * a score depends on, for a classifier's logit of one finding (Classifier.attribute) or the zero-shot
 * logit against prompt embeddings (ClipModel.attribute). docs/attribution.md says what each method shows.
 */

import { z } from 'zod';
import {
  flag,
  intInRange,
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  or,
  parseOptions,
  positiveCount,
  rule,
  typeName,
} from '../common/options.js';
import type { NativeAttribution, NativeAttributionOptions } from '../native.js';
import { ATTRIBUTION_DEFAULTS, ATTRIBUTION_LIMITS } from './defaults.js';

/** The attribution methods `attribute` accepts. */
export const ATTRIBUTION_METHODS = ['gradient', 'smoothgrad', 'ig'] as const;
/** 'gradient' (vanilla), 'smoothgrad' or 'ig' (Integrated Gradients). */
export type AttributionMethod = (typeof ATTRIBUTION_METHODS)[number];
/** Each method's name in words (help texts, reports). */
export const ATTRIBUTION_METHOD_NAMES: Record<AttributionMethod, string> = {
  gradient: 'vanilla gradient (saliency)',
  smoothgrad: 'SmoothGrad',
  ig: 'Integrated Gradients',
};

/** Options of `Classifier.attribute` and `ClipModel.attribute` (docs/attribution.md). */
export interface AttributionOptions {
  /** 'gradient' (vanilla), 'smoothgrad' or 'ig' (Integrated Gradients). Default 'gradient'. */
  method?: AttributionMethod;
  /** SmoothGrad: noisy copies per image (default 16, at most 1024). */
  samples?: number;
  /** SmoothGrad: noise std as a fraction of each image's value range (default 0.15). */
  sigma?: number;
  /** IG: midpoint Riemann steps (default 32, at most 1024). */
  steps?: number;
  /** IG: 'zeros' (the normalised-space origin, default) or an image [3,S,S] or [rows,3,S,S]. */
  baseline?: 'zeros' | Float32Array;
  /**
   * Rows per forward/backward pass (IG steps and SmoothGrad samples are batched; default 16). Memory
   * follows `batch`, not `steps` or `samples`.
   */
  batch?: number;
  /** SmoothGrad noise seed (default 0): the same seed gives the same map on any device. */
  seed?: number;
  /** Also return the signed per-channel attribution [rows,3,S,S]. */
  signed?: boolean;
  /** bf16 autocast where the device supports it. */
  bf16?: boolean;
}

const AttributionOptionsSchema = z
  .object({
    method: or(oneOf(ATTRIBUTION_METHODS), ATTRIBUTION_DEFAULTS.method),
    samples: or(intInRange(1, ATTRIBUTION_LIMITS.samples), ATTRIBUTION_DEFAULTS.samples),
    sigma: or(nonNegativeNumber, ATTRIBUTION_DEFAULTS.sigma),
    steps: or(intInRange(1, ATTRIBUTION_LIMITS.steps), ATTRIBUTION_DEFAULTS.steps),
    /** Its length depends on the images: checked by attributionOptions. */
    baseline: or(
      rule<'zeros' | Float32Array>(
        (v) => v === 'zeros' || v instanceof Float32Array,
        (v) => `must be 'zeros' or a Float32Array, got ${typeName(v)}`,
        'type',
      ),
      ATTRIBUTION_DEFAULTS.baseline,
    ),
    batch: or(positiveCount, ATTRIBUTION_DEFAULTS.batch),
    seed: or(nonNegativeInt, ATTRIBUTION_DEFAULTS.seed),
    signed: flag,
    bf16: flag,
  })
  .strict();

/** Attribution maps of `rows` images of size S, and the scores they explain. */
export interface Attribution {
  method: AttributionMethod;
  rows: number;
  size: number;
  /** `[rows,S,S]`: per pixel, the sum over the three channels of |attribution| (non-negative). */
  map: Float32Array;
  /** `[rows,3,S,S]` when asked: the attribution itself (IG: sums to score − baselineScore). */
  signed?: Float32Array;
  /** `[rows]`: the explained score at the input (a logit). */
  score: Float32Array;
  /** `[rows]`, IG only: the score at the baseline. */
  baselineScore?: Float32Array;
}

/**
 * Checked native options for `rows` images of size S (label/text are added by the model class).
 * @throws {TypeError} an unknown option, a non-string method, or a baseline that is not a Float32Array.
 * @throws {RangeError} an unknown method, samples/steps/batch not positive integers (samples and steps
 *   at most ATTRIBUTION_LIMITS), sigma < 0, a
 *   negative or non-integer seed, or a baseline of the wrong length.
 */
export function attributionOptions(
  options: AttributionOptions,
  rows: number,
  size: number,
): NativeAttributionOptions {
  if (typeof options !== 'object' || options === null)
    throw new TypeError(`attribution options must be an object, got ${typeName(options)}`);
  const o = parseOptions(AttributionOptionsSchema, options, 'attribute');
  let baseline: Float32Array | null = null;
  if (o.baseline instanceof Float32Array) {
    const one = 3 * size * size;
    if (o.baseline.length !== one && o.baseline.length !== rows * one)
      throw new RangeError(
        `baseline must hold ${one} values ([3,${size},${size}]) or ${rows * one} ([${rows},3,${size},${size}]), got ${o.baseline.length}`,
      );
    baseline = o.baseline;
  }
  return { ...o, baseline };
}

/** The addon's answer with its shape. */
export function attributionResult(
  r: NativeAttribution,
  method: AttributionMethod,
  rows: number,
  size: number,
): Attribution {
  return {
    method,
    rows,
    size,
    map: r.map,
    score: r.score,
    ...(r.signed ? { signed: r.signed } : {}),
    ...(r.baselineScore ? { baselineScore: r.baselineScore } : {}),
  };
}
