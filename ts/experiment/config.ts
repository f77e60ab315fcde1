/**
 * Experiment configuration: one zod schema, defaults for a real run, and the demo preset (all demo
 * size knobs live in DEMO below, nowhere else).
 */

import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import { parseJsonText } from '../common/io.js';
import { formatIssues } from '../common/options.js';
import { MAX_THREADS, threadsProblem } from '../common/threads.js';
import { DEFAULT_MIN_DICE } from '../data/chexmask.js';
import { DATASETS, READER_RULES } from '../data/datasets/names.js';
import {
  ATTRIBUTION_LIMITS,
  CLASSIFIER_DEFAULTS,
  DEFAULT_DEVICE,
  SEGMENTER_DEFAULTS,
} from '../model/defaults.js';
import { learningRate, promptTemplate } from '../model/options.js';
import { DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT } from '../model/prompts.js';

/** The two image variants a model is trained on: as given, and with the CheXmask contours drawn in. */
export const VARIANTS = ['original', 'masked'] as const;
/** 'original' or 'masked'. */
export type Variant = (typeof VARIANTS)[number];
/** What a model is tested on: the training variants, plus contours predicted by a segmenter (config.segmenter). */
export const PREDICTED = 'masked-pred' as const;
/** 'original', 'masked', or 'masked-pred' (contours from the segmenter's masks). */
export type TestVariant = Variant | typeof PREDICTED;
export const SETUPS = ['zeroshot', 'linear-probe', 'finetune'] as const;
export type Setup = (typeof SETUPS)[number];

const positiveInt = z.number().int().positive();
/** Learning rates: the model classes' own rule (finite, 0 to MAX_LEARNING_RATE). */
const lr = learningRate;

export const TrainSchema = z
  .object({
    enabled: z.boolean().default(true),
    epochs: positiveInt.default(10),
    batchSize: positiveInt.default(32),
    weightDecay: z.number().min(0).default(1e-4),
    /** Stop a cell's training after this many epochs without a better validation score (0 = never). */
    patience: z.number().int().min(0).default(0),
    /** Use at most this many training images (null = all); the first N in a fixed seeded order. */
    maxTrainImages: positiveInt.nullable().default(null),
    /** Full-state epoch checkpoints kept per cell (resume needs the last; best.ckpt is weights only). */
    keepCheckpoints: positiveInt.default(1),
    /** Share of the training split that may be unreadable per epoch before the cell fails (skips are counted). */
    maxUnreadableShare: z.number().min(0).max(1).default(0.01),
  })
  .strict();

/** A dataset a run's trained models are also tested on (Table 2 per test dataset; cross-dataset.ts). */
export const TestDatasetSchema = z
  .object({
    /** Which adapter indexes `root` (docs/data.md). */
    dataset: z.enum(DATASETS),
    /** Name of its section in results.json and of table2-<name>.md; default: the dataset's name. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'only letters, digits, ".", "_" and "-"')
      // its folder is <run>/test/<name>: "." or ".." would be the run folder or above it
      .refine((n) => n !== '.' && n !== '..', 'not "." or ".." (it names a folder of the run)')
      .nullable()
      .default(null),
    /** Dataset root, as for `cxrmask index --dataset`. */
    root: z
      .string({ error: (iss) => (iss.input === undefined ? 'required: the dataset root' : undefined) })
      .min(1),
    /** CheXmask CSV of that dataset. */
    chexmask: z
      .string({ error: (iss) => (iss.input === undefined ? 'required: its CheXmask CSV' : undefined) })
      .min(1),
    /** Image cache of its test split; default `<data.cache>-test-<name>`. */
    cache: z.string().min(1).nullable().default(null),
  })
  .strict();

export type TestDatasetInput = z.input<typeof TestDatasetSchema>;

/**
 * The longest `name` a new run folder takes: `<timestamp>-<name>[-k]` stays well inside a file name's
 * 255 bytes. Saved configs of earlier runs may hold up to 239 characters and still resume.
 */
export const MAX_NEW_RUN_NAME = 200;

/** The zod schema of an experiment config: every field, its default and its bounds (docs/experiments.md). */
export const ConfigSchema = z
  .object({
    /** Free-text name; appended to the run folder name. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]*$/, 'only letters, digits, ".", "_" and "-"')
      // a saved config may hold what an earlier version let a run folder have (255 bytes less
      // `<timestamp>-`); a new run folder takes MAX_NEW_RUN_NAME (newRunDir checks)
      .max(239, 'at most 239 characters (it becomes part of the run folder name)')
      .default(''),
    /** Parent folder of run folders; each run gets a new `<timestamp>-<name>` folder inside. */
    runsDir: z.string().min(1).default('runs'),
    data: z
      .object(
        {
          /** Decoded-image cache folder (from `cxrmask cache`); built first from `root` when missing. */
          cache: z
            .string({ error: (iss) => (iss.input === undefined ? 'required (--cache DIR)' : undefined) })
            .min(1),
          /** Which dataset `root` holds (docs/data.md); its adapter indexes it and names CheXmask's id column. */
          dataset: z.enum(DATASETS).default('mimic'),
          /** Dataset root (MIMIC: the three CSVs + files/); needed only to build a missing cache. */
          root: z.string().min(1).nullable().default(null),
          /** CheXmask CSV of that dataset (MIMIC-CXR-JPG.csv, ChestX-Ray8.csv, …); needed only to build a missing cache. */
          chexmask: z.string().min(1).nullable().default(null),
          views: z.array(z.string().min(1)).min(1).default(['PA', 'AP']),
          /** CheXpert −1 labels: ignore (masked out of loss and metrics), zeros or ones. */
          uncertain: z.enum(['ignore', 'zeros', 'ones']).default('ignore'),
          /** Blank labels (no mention in the report): zeros (negative) or ignore (masked out of loss and metrics). */
          blank: z.enum(['zeros', 'ignore']).default('zeros'),
          /** Keep only images with ≥ 1 positive among the five findings (the paper's filter). */
          requirePositive: z.boolean().default(false),
          /** vindr (also as a test dataset): how its radiologists' reads become one label; others ignore it. */
          readerRule: z.enum(READER_RULES).default('majority'),
          /** CheXmask quality filter (Dice RCA mean). */
          minDice: z.number().min(0).max(1).default(DEFAULT_MIN_DICE),
        },
        {
          error: (iss) =>
            iss.input === undefined
              ? 'required: the image cache folder, as "data": { "cache": DIR } or --cache DIR'
              : undefined,
        },
      )
      .strict(),
    model: z
      .object({
        dir: z.string().min(1).default('models/tiny'),
        device: z.enum(['auto', 'cpu', 'cuda']).default(DEFAULT_DEVICE),
        /** Intra-op threads (null = library default); at most MAX_THREADS (ts/common/threads.ts). */
        threads: positiveInt
          .max(MAX_THREADS, { error: (iss) => threadsProblem(iss.input) ?? undefined })
          .nullable()
          .default(null),
      })
      .strict()
      .default({ dir: 'models/tiny', device: DEFAULT_DEVICE, threads: null }),
    /**
     * Test-time masks from a trained segmenter (`cxrmask segmenter train`): every model is also tested
     * on images masked with the predicted contours ('masked-pred'). null = CheXmask contours only.
     */
    segmenter: z
      .object({
        /** Exported segmenter folder (seg.pt + model.json). */
        dir: z.string().min(1),
        /** Trained weights (best.pt of `cxrmask segmenter train`). */
        weights: z.string().min(1),
        threshold: z.number().gt(0).lt(1).default(SEGMENTER_DEFAULTS.threshold),
      })
      .strict()
      .nullable()
      .default(null),
    /** One cell folder per seed: a repeated seed would train the same folder twice and count it twice. */
    seeds: z
      .array(z.number().int().min(0))
      .min(1)
      .refine((a) => new Set(a).size === a.length, {
        error: (iss) => {
          const a = iss.input as number[];
          return `no duplicates (seed ${a.find((x, i) => a.indexOf(x) !== i)} is given twice)`;
        },
      })
      .default([0, 1, 2]),
    /** Which image variants LP/JFT models are trained on (each is tested on both). */
    trainVariants: z
      .array(z.enum(VARIANTS))
      .min(1)
      .refine((a) => new Set(a).size === a.length, 'no duplicates')
      .default(['original', 'masked']),
    zeroshot: z
      .object({
        enabled: z.boolean().default(true),
        /** `{finding}` is replaced by the finding's text (FINDINGS name, lower-cased). */
        prompt: promptTemplate.default(DEFAULT_PROMPT),
        /** Negative prompt for the per-finding protocol; null = raw scaled cosine → sigmoid. */
        negativePrompt: promptTemplate.nullable().default(DEFAULT_NEGATIVE_PROMPT),
        batchSize: positiveInt.default(64),
      })
      .strict()
      .prefault({}),
    linearProbe: TrainSchema.extend({
      lr: lr.default(CLASSIFIER_DEFAULTS.lrHead),
      epochs: positiveInt.default(30),
      batchSize: positiveInt.default(256),
    }).prefault({}),
    finetune: TrainSchema.extend({
      lrEncoder: lr.default(CLASSIFIER_DEFAULTS.lrEncoder),
      lrHead: lr.default(CLASSIFIER_DEFAULTS.lrHead),
      gradClip: z.number().positive().nullable().default(1),
      /** bf16 autocast: `auto` = on for CUDA, off on CPU. */
      bf16: z.union([z.boolean(), z.literal('auto')]).default('auto'),
    }).prefault({}),
    /** Attribution maps after the cells (ts/experiment/grid-attribution.ts; docs/attribution.md). Off by default. */
    attribution: z
      .object({
        enabled: z.boolean().default(false),
        /** Test images per model (evenly spaced over the test split's images with a positive finding). */
        images: positiveInt.default(8),
        method: z.enum(['gradient', 'smoothgrad', 'ig']).default('ig'),
        steps: positiveInt.max(ATTRIBUTION_LIMITS.steps).default(16),
        samples: positiveInt.max(ATTRIBUTION_LIMITS.samples).default(8),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        /** Threshold rule of the accuracy metrics, applied per finding on validation (docs/experiments.md). */
        thresholdRule: z.enum(['youden', 'f1', 'accuracy', 'fixed']).default('accuracy'),
        /** Threshold rule of sensitivity / specificity / F1 (the operating point), on validation. */
        operatingPointRule: z.enum(['youden', 'f1', 'accuracy', 'fixed']).default('youden'),
        fixedThreshold: z.number().min(0).max(1).default(0.5),
        /** Model selection metric on validation. */
        selection: z.enum(['macroAUROC', 'meanLabelAccuracy', 'loss']).default('macroAUROC'),
        /** Paired-bootstrap resamples (0 = no CIs); bounded: each one re-scores every model's test set. */
        bootstrap: z.number().int().min(0).max(100_000).default(1000),
        /** The metric shown in Table 2. */
        primary: z
          .enum(['meanLabelAccuracy', 'macroAUROC', 'exactMatch', 'macroF1'])
          .default('meanLabelAccuracy'),
      })
      .strict()
      .prefault({}),
    /** Other datasets the trained models are tested on, with thresholds from this run's validation split. */
    test: z
      .object({
        datasets: z.array(TestDatasetSchema).default([]),
        /** A test dataset of the same kind as data.dataset (e.g. another site's MIMIC copy) is refused unless set. */
        allowSameDataset: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.test.datasets.forEach((t, i) => {
      const name = t.name ?? t.dataset;
      if (t.dataset === c.data.dataset && !c.test.allowSameDataset)
        ctx.addIssue({
          code: 'custom',
          path: ['test', 'datasets', i, 'dataset'],
          message: `"${t.dataset}" is the training dataset (data.dataset); set test.allowSameDataset to test on another copy of it`,
        });
      if (seen.has(name))
        ctx.addIssue({
          code: 'custom',
          path: ['test', 'datasets', i, 'name'],
          message: `"${name}" is given twice; give each test dataset its own name`,
        });
      seen.add(name);
    });
  });

/**
 * An experiment config with every default filled in (what `parseConfig` and `loadConfig` return). Its
 * fields are those of {@link ConfigSchema}; what each means, and its default: docs/experiments.md (Config).
 */
export type ExperimentConfig = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge of plain objects (arrays and scalars from `b` replace those of `a`; undefined skipped). */
export function deepMerge(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (!isObj(a) || !isObj(b)) return b;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = deepMerge(a[k], v);
  return out;
}

/** Validate a config object; throws ConfigError listing every problem. */
export function parseConfig(input: unknown, source = 'config'): ExperimentConfig {
  const r = ConfigSchema.safeParse(input);
  if (!r.success) throw new ConfigError(`invalid ${source}:\n${formatIssues(r.error)}`);
  return r.data;
}

/** Largest config file read (configs are a few KB). */
export const MAX_CONFIG_BYTES = 1 << 20;

/** Read a JSON config file (if any), deep-merge `overrides` on top (flags win), validate. */
export function loadConfig(file: string | null | undefined, overrides: unknown = {}): ExperimentConfig {
  let base: unknown = {};
  if (file) {
    let text: string;
    try {
      // a config is a few KB: a device (/dev/zero), a FIFO or a huge file would be read without end
      const st = statSync(file);
      if (!st.isFile()) throw new Error('not a regular file');
      if (st.size > MAX_CONFIG_BYTES)
        throw new Error(`${st.size} bytes, above the ${MAX_CONFIG_BYTES} a config may have`);
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
    }
    try {
      base = parseJsonText(text);
    } catch (e) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(e as Error).message}`);
    }
    if (!isObj(base)) throw new ConfigError(`config file ${file} must hold a JSON object`);
  }
  return parseConfig(deepMerge(base, overrides), file ? `config (${file} + flags)` : 'config');
}

/**
 * The demo's sizes, in one place. Tuned so `cxrmask demo` (synthesize → index → cache → full grid,
 * 3 seeds) takes about 3.5 minutes on 2 idle CPU cores with the `tiny` model (README: 3.1 min measured
 * in a fresh clone, plus about half a minute of attribution).
 */
export const DEMO = {
  images: 1500,
  synthSeed: 7,
  imageWidth: 256,
  imageHeight: 256,
  seeds: [0, 1, 2],
  linearProbe: { epochs: 40, batchSize: 64, lr: 3e-3 },
  finetune: { epochs: 8, batchSize: 16, lrEncoder: 1e-3, lrHead: 1e-2 },
  bootstrap: 500,
  /** Attribution (Integrated Gradients) of every trained model on a few test images: the report's third claim. */
  attribution: { enabled: true, images: 4, method: 'ig', steps: 8 },
  /** The tiny segmenter the demo trains for its predicted-mask column (cxrmask segmenter train). */
  segmenter: { model: 'models/seg-tiny', epochs: 2, batchSize: 16, lr: 3e-3, maxTrainImages: 600 },
} as const;

/** Config used by `cxrmask demo` for a synthetic dataset under `dataDir`. */
export function demoConfig(dataDir: string, overrides: unknown = {}): ExperimentConfig {
  const base: ConfigInput = {
    name: 'demo',
    data: {
      cache: `${dataDir}/cache`,
      root: `${dataDir}/mimic`,
      chexmask: `${dataDir}/chexmask/MIMIC-CXR-JPG.csv`,
    },
    seeds: [...DEMO.seeds],
    linearProbe: { ...DEMO.linearProbe },
    finetune: { ...DEMO.finetune },
    metrics: { bootstrap: DEMO.bootstrap },
    attribution: { ...DEMO.attribution },
  };
  return parseConfig(deepMerge(base, overrides), 'demo config');
}
