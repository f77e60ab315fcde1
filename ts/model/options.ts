/**
 * The option objects of the model classes as zod schemas (the vocabulary of common/options.ts), each
 * option filled in from model/defaults.ts when left out. The classes parse with these and hand the
 * addon every key: it reads its option objects strictly.
 */
import { z } from 'zod';
import { LINK_POLICIES } from '../common/files.js';
import {
  between,
  deviceName,
  flag,
  nonEmptyString,
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  or,
  positiveCount,
  rule,
} from '../common/options.js';
import { CLASSIFIER_DEFAULTS, DEFAULT_DEVICE, MAX_LEARNING_RATE, SEGMENTER_DEFAULTS } from './defaults.js';
import { FINDING_SLOT } from './prompts.js';

/**
 * A learning rate, wherever one is taken (the model classes, the run config, the CLI): finite, from 0
 * (as PyTorch, a rate that leaves the weights as they are) to MAX_LEARNING_RATE.
 */
export const learningRate = rule<number>(
  (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= MAX_LEARNING_RATE,
  (v) => `must be a finite number from 0 to ${MAX_LEARNING_RATE}, got ${String(v)}`,
);

/** `device` of every model class. */
export const deviceOption = or(deviceName, DEFAULT_DEVICE);

export const ClassifierCreateSchema = z
  .object({
    modelDir: z.preprocess((v) => v ?? null, nonEmptyString.nullable()),
    /** Checked by Classifier.create: required without modelDir, not read with it. */
    inputDim: z.unknown().optional(),
    numLabels: or(positiveCount, CLASSIFIER_DEFAULTS.numLabels),
    device: deviceOption,
    lrEncoder: or(learningRate, CLASSIFIER_DEFAULTS.lrEncoder),
    lrHead: or(learningRate, CLASSIFIER_DEFAULTS.lrHead),
    weightDecay: or(nonNegativeNumber, CLASSIFIER_DEFAULTS.weightDecay),
    freezeEncoder: flag,
    gradClip: or(nonNegativeNumber, CLASSIFIER_DEFAULTS.gradClip),
    bf16: flag,
    seed: or(nonNegativeInt, CLASSIFIER_DEFAULTS.seed),
  })
  .strict();

export const SegmenterLoadSchema = z
  .object({
    device: deviceOption,
    lr: or(learningRate, SEGMENTER_DEFAULTS.lr),
    weightDecay: or(nonNegativeNumber, SEGMENTER_DEFAULTS.weightDecay),
    gradClip: or(nonNegativeNumber, SEGMENTER_DEFAULTS.gradClip),
    bf16: flag,
    threshold: or(between(0, 1), SEGMENTER_DEFAULTS.threshold),
  })
  .strict();

export const ClipLoadSchema = z.object({ device: deviceOption }).strict();

/**
 * `save(path, { weightsOnly, links })` of the trainable models: a symlink at the path is written
 * through (`follow`, the default: a path the caller named) or replaced (`replace`: a file inside a
 * run's own folder, files.ts LinkPolicy).
 */
export const SaveSchema = z.object({ weightsOnly: flag, links: or(oneOf(LINK_POLICIES), 'follow') }).strict();

/** `trainStep(…, { readLoss })` / `idleStep({ readLoss })`: anything but false reads the loss. */
export const ReadLossSchema = z.object({ readLoss: z.preprocess((v) => v !== false, z.boolean()) }).strict();

/** `encodeImage(x, n, { bf16 })`. */
export const EncodeSchema = z.object({ bf16: flag }).strict();

/** An object the caller hands in as is (a backend, a loaded model): checked to be one, never copied. */
export const anObject = rule<object>(
  (v) => typeof v === 'object' && v !== null,
  (v) => `must be an object, got ${v === null ? 'null' : typeof v}`,
  'type',
);

/** Any string (a prompt template may be anything the tokenizer reads). */
export const aString = rule<string>(
  (v) => typeof v === 'string',
  (v) => `must be a string, got ${typeof v}`,
  'type',
);

/**
 * A zero-shot prompt template: a string with `{finding}` in it. Without it (a typo such as
 * `{findings}`) the five findings would get one and the same prompt; the run config and the API
 * refuse it alike.
 */
export const promptTemplate = aString.refine((v) => v.includes(FINDING_SLOT), {
  error: (iss) => `must contain ${FINDING_SLOT}, got ${JSON.stringify(iss.input)}`,
  params: { kind: 'range' },
});

/** A function the caller hands in (a preprocess stand-in). */
export const aFunction = rule<(...a: never[]) => unknown>(
  (v) => typeof v === 'function',
  (v) => `must be a function, got ${typeof v}`,
  'type',
);
