/** Option groups shared by the commands (yargs definitions), their argv shape, and list-valued flags. */
import { statSync } from 'node:fs';
import type { Argv } from 'yargs';
import type { z } from 'zod';
import { DataError, UsageError } from '../common/errors.js';
import { saveTarget } from '../common/files.js';
import { firstIssue } from '../common/options.js';
import { DATASETS, type DatasetName } from '../data/datasets/names.js';
import { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, type ImageLimits } from '../images/input.js';

/** `20mb`, `512k`, `1048576` → bytes (binary units); `flag` names the option in the error. */
export function parseSize(s: string, flag = '--body-limit'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(s);
  if (!m) throw new UsageError(`${flag} ${s}: expected a size such as 20mb, 512kb or 1048576`);
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  const bytes = Math.floor(Number(m[1]) * { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[unit]!);
  if (bytes < 1) throw new UsageError(`${flag} ${s}: must be at least 1 byte`);
  return bytes;
}

/** Caps on each image read (ts/images/input.ts), shared by the commands that decode images. */
export function imageLimitOptions<T>(y: Argv<T>) {
  return y
    .option('max-pixels', {
      type: 'number',
      describe: `largest width×height an image header may declare; larger images are refused before decoding (default ${DEFAULT_MAX_PIXELS})`,
    })
    .option('max-image-size', {
      type: 'string',
      describe: `largest image file, e.g. 64mb (default ${DEFAULT_MAX_FILE_BYTES / 2 ** 20}mb)`,
    });
}

export interface ImageLimitArgv {
  maxPixels?: number;
  maxImageSize?: string;
}

/** The image limits the flags set (unset flags keep the defaults). */
export function imageLimitsFrom(argv: ImageLimitArgv): ImageLimits {
  const out: ImageLimits = {};
  if (argv.maxPixels !== undefined) {
    if (!Number.isSafeInteger(argv.maxPixels) || argv.maxPixels < 1) {
      throw new UsageError(`--max-pixels ${argv.maxPixels}: expected a positive integer`);
    }
    out.maxPixels = argv.maxPixels;
  }
  if (argv.maxImageSize !== undefined) {
    if (typeof argv.maxImageSize !== 'string') throw new UsageError('--max-image-size: give it once');
    out.maxFileBytes = parseSize(argv.maxImageSize, '--max-image-size');
  }
  return out;
}

/** Options shared by every command that runs models. */
export function modelOptions<T>(y: Argv<T>) {
  return y
    .option('model', { type: 'string', describe: 'exported model folder (default models/tiny)' })
    .option('device', { choices: ['auto', 'cpu', 'cuda'] as const, describe: 'where to run (default auto)' })
    .option('threads', { type: 'number', describe: 'intra-op CPU threads' });
}

const THRESHOLD_RULES = ['youden', 'f1', 'accuracy', 'fixed'] as const;

/** How predictions become metrics (shared by the commands that evaluate: run, train, eval …). */
export function metricOptions<T>(y: Argv<T>) {
  return y
    .option('threshold-rule', {
      choices: THRESHOLD_RULES,
      describe: 'threshold rule of the accuracy metrics, per finding on validation (default accuracy)',
    })
    .option('operating-point-rule', {
      choices: THRESHOLD_RULES,
      describe: 'threshold rule of sensitivity/specificity/F1 (default youden)',
    })
    .option('threshold', {
      type: 'number',
      describe:
        'the threshold for --threshold-rule/--operating-point-rule fixed, and under every rule the fallback of a finding with one class among its validation labels (default 0.5)',
    })
    .option('bootstrap', { type: 'number', describe: 'bootstrap resamples for the masked − original CIs' })
    .option('primary', {
      choices: ['meanLabelAccuracy', 'macroAUROC', 'exactMatch', 'macroF1'] as const,
      describe: 'metric shown in Table 2',
    });
}

/** Options that map onto the experiment config (flags override the --config file). */
export function experimentOptions<T>(y: Argv<T>) {
  return metricOptions(modelOptions(y))
    .option('config', {
      type: 'string',
      describe: 'experiment config JSON (see docs/experiments.md); flags override it',
    })
    .option('cache', { type: 'string', describe: 'image cache folder (from `cxrmask cache`)' })
    .option('dataset', {
      choices: DATASETS,
      describe: 'which dataset --data-root holds (default mimic; docs/data.md)',
    })
    .option('data-root', {
      type: 'string',
      describe: 'dataset root (MIMIC-CXR-JPG: the three CSVs + files/), to build a missing cache',
    })
    .option('chexmask', { type: 'string', describe: 'CheXmask CSV (to build a missing cache)' })
    .option('runs-dir', { type: 'string', describe: 'parent folder of run folders (default runs)' })
    .option('name', {
      type: 'string',
      describe: 'suffix of the run folder name (letters, digits, ".", "_", "-"; at most 200 characters)',
    })
    .option('seeds', { type: 'string', describe: 'comma-separated seeds, e.g. 0,1,2' })
    .option('prompt', { type: 'string', describe: 'zero-shot prompt template with {finding}' })
    .option('negative-prompt', {
      type: 'string',
      describe: 'zero-shot negative prompt with {finding}; "none" for raw cosine',
    })
    .option('lp-epochs', { type: 'number', describe: 'linear-probe epochs' })
    .option('ft-epochs', { type: 'number', describe: 'fine-tuning epochs' })
    .option('ft-batch-size', { type: 'number', describe: 'fine-tuning batch size' })
    .option('lr-encoder', { type: 'number', describe: 'fine-tuning encoder learning rate' })
    .option('lr-head', { type: 'number', describe: 'fine-tuning head learning rate' })
    .option('max-train-images', { type: 'number', describe: 'cap on training images per cell' })
    .option('progress', {
      type: 'boolean',
      default: true,
      describe: 'progress bars (--no-progress: plain log lines)',
    });
}

export interface ExperimentArgv {
  config?: string;
  cache?: string;
  dataset?: DatasetName;
  dataRoot?: string;
  chexmask?: string;
  runsDir?: string;
  name?: string;
  seeds?: string;
  prompt?: string;
  negativePrompt?: string;
  lpEpochs?: number;
  ftEpochs?: number;
  ftBatchSize?: number;
  lrEncoder?: number;
  lrHead?: number;
  maxTrainImages?: number;
  thresholdRule?: string;
  operatingPointRule?: string;
  threshold?: number;
  bootstrap?: number;
  primary?: string;
  model?: string;
  device?: string;
  threads?: number;
}

/** Every experiment option (a Record: the compiler keeps it in step with ExperimentArgv). */
const EXPERIMENT_KEYS: Record<keyof ExperimentArgv, true> = {
  config: true,
  cache: true,
  dataset: true,
  dataRoot: true,
  chexmask: true,
  runsDir: true,
  name: true,
  seeds: true,
  prompt: true,
  negativePrompt: true,
  lpEpochs: true,
  ftEpochs: true,
  ftBatchSize: true,
  lrEncoder: true,
  lrHead: true,
  maxTrainImages: true,
  thresholdRule: true,
  operatingPointRule: true,
  threshold: true,
  bootstrap: true,
  primary: true,
  model: true,
  device: true,
  threads: true,
};

/** The experiment flags given in `argv`, as typed (`--seeds`, `--ft-epochs`: yargs' camelCase key in kebab case). */
export function experimentFlagsGiven(argv: ExperimentArgv): string[] {
  return (Object.keys(EXPERIMENT_KEYS) as (keyof ExperimentArgv)[])
    .filter((k) => argv[k] !== undefined)
    .map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
}

/** `a,b , c` → ['a','b','c'] (undefined stays undefined). */
export function parseList(s: string | undefined): string[] | undefined {
  if (s === undefined) return undefined;
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

/**
 * A count from the command line (epochs, batch size, images …): an integer ≥ `min`, else a UsageError
 * naming the flag. yargs' `type: 'number'` lets 0, -3, 2.5 and NaN through.
 */
export function checkCount(flag: string, value: number | undefined, min = 1, max = Infinity): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max)
    throw new UsageError(
      `--${flag} ${value}: expected an integer ${max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`}`,
    );
}

/**
 * A flag checked with a piece of the library's validation vocabulary (e.g. model/options.ts
 * learningRate), so the command line and the API refuse the same values: `--<flag> <value>: must be …`.
 */
export function checkFlag(flag: string, schema: z.ZodType, value: unknown): void {
  if (value === undefined) return;
  const r = firstIssue(schema, value);
  if (!r.ok) throw new UsageError(`--${flag} ${String(value)}: ${r.issue.message}`);
}

/**
 * An output file flag must name a file to write (checked before any work, not at the final write):
 * not a folder, FIFO or device (`--out /dev/null`), which the atomic write would refuse at the end.
 */
export function checkOutputFile(flag: string, path: string | undefined): void {
  if (path === undefined) return;
  let folder = false;
  try {
    folder = statSync(path).isDirectory();
  } catch {}
  if (folder) throw new UsageError(`--${flag} ${path}: is a folder; give the path of the file to write`);
  try {
    saveTarget(path, 'follow');
  } catch (e) {
    if (e instanceof DataError) throw new UsageError(`--${flag} ${e.message}`);
    throw e;
  }
}
