/**
 * The three kinds of model the paper compares, and what each is made of:
 * - `zeroshot`: the CLIP towers scoring prompts (no checkpoint);
 * - `linear-probe`: a linear head over the fixed image tower's embeddings (a head-only classifier
 *   fed the tower's features; or, created with freezeEncoder, the tower and the head in one);
 * - `finetune`: the image tower and the head, trained together.
 * A trained kind is recorded in its checkpoint by Classifier.save (native Classifier::Save) and read
 * back with Classifier.readHeader; openModel (open.ts) opens any of them from it.
 */

import { NUM_LABELS } from '../common/labels.js';
import type { ClassifierOptions } from './classifier.js';

/** The three kinds, in the paper's order. */
export const MODEL_KINDS = ['zeroshot', 'linear-probe', 'finetune'] as const;
/** `zeroshot`, `linear-probe` or `finetune`. */
export type ModelKind = (typeof MODEL_KINDS)[number];
/** The kinds a checkpoint can hold: `linear-probe` or `finetune`. */
export type TrainedKind = Exclude<ModelKind, 'zeroshot'>;

/** What a trained kind's classifier is fed: the image tower's embeddings, or the images. */
export function inputOf(kind: TrainedKind): 'features' | 'images' {
  return kind === 'linear-probe' ? 'features' : 'images';
}

/**
 * The classifier a trained kind is made of: a head over `inputDim` features (linear probe), or the
 * image tower of `modelDir` with its head (fine-tuning). `rest` carries the training settings.
 */
export function classifierFor(
  kind: TrainedKind,
  where: { modelDir: string; inputDim: number; device: string },
  rest: Omit<ClassifierOptions, 'modelDir' | 'inputDim' | 'device'> = {},
): ClassifierOptions {
  const base = { numLabels: NUM_LABELS, device: where.device };
  return inputOf(kind) === 'features'
    ? { modelDir: null, inputDim: where.inputDim, ...base, ...rest }
    : { modelDir: where.modelDir, ...base, ...rest };
}
