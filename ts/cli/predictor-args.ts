/**
 * The flags of the commands that score images with one classifier (`cxrmask predict`, `cxrmask
 * serve`), and the predictor opened from them: which model (a model folder, or a run's trained cell),
 * which segmenter, where and how it runs, what an image may be.
 */
import { accessSync, constants, statSync } from 'node:fs';
import type { Argv } from 'yargs';
import { UsageError } from '../common/errors.js';
import { nonFileKind } from '../common/files.js';
import { DEFAULT_MIN_DICE, JoinOptionsSchema } from '../data/chexmask.js';
import type { ImageLimits } from '../images/input.js';
import { openSegmenter } from '../segment/open.js';
import { type ModelSource, resolveModelSource } from '../service/model-source.js';
import { MaskingPredictor, type PredictorKind } from '../service/predictor.js';
import { type ImageLimitArgv, imageLimitOptions, imageLimitsFrom } from './options.js';

export interface PredictorArgv extends ImageLimitArgv {
  model: string;
  checkpoint?: string;
  kind?: PredictorKind;
  segmenter?: string;
  allowUntrained?: boolean;
  device: 'auto' | 'cpu' | 'cuda';
  bf16?: boolean;
  /** The CheXmask quality filter for `--chexmask` (both commands pick an id's row by it). */
  minDice: number;
  /** serve only: the most requests that go through the models together. */
  maxBatch?: number;
}

export function predictorOptions<T>(y: Argv<T>) {
  return imageLimitOptions(y)
    .option('model', {
      type: 'string',
      default: 'models/tiny',
      describe:
        'exported model folder (zero-shot, or with --checkpoint) or a trained cell runs/<run>/cells/<cell> (or its best.ckpt)',
    })
    .option('checkpoint', { type: 'string', describe: 'best.ckpt of a trained cell, with a model folder' })
    .option('kind', {
      choices: ['zeroshot', 'linear-probe', 'finetune'] as const,
      describe: 'the kind the checkpoint must record (default: whatever it records; zeroshot without one)',
    })
    .option('segmenter', {
      type: 'string',
      describe:
        'segmenter: a `cxrmask segmenter train` output folder (its best.pt; the demo leaves one in <data>/segmenter), a .pt weights file in one, or an exported folder of trained weights; images without a CheXmask row get predicted lung/heart masks',
    })
    .option('allow-untrained', {
      type: 'boolean',
      describe: 'accept a --segmenter that was never trained (a random-init export: its masks are noise)',
    })
    .option('device', {
      choices: ['auto', 'cpu', 'cuda'] as const,
      default: 'auto' as const,
      describe: 'where to run',
    })
    .option('min-dice', {
      type: 'number',
      default: DEFAULT_MIN_DICE,
      describe:
        'CheXmask quality filter for --chexmask: a row whose Dice RCA (Mean) is below this is refused, and of an id with several rows the first one passing it is used',
    })
    .option('bf16', {
      type: 'boolean',
      describe:
        'run the image tower and the segmenter under bf16 autocast (CUDA, or CPUs with AVX512-BF16/AMX)',
    });
}

/** What the flags name, checked before any slow work: the model source and the image limits. */
export interface PredictorPlan {
  /** The model `--model` / `--checkpoint` name (a cell brings its run's model folder, contours and preprocessing). */
  source: ModelSource;
  imageLimits: ImageLimits;
  minDice: number;
}

/**
 * @throws {UsageError|ConfigError} a bad image-limit or `--min-dice` flag, a `--checkpoint` that is not a
 *   readable file, or a model that is neither folder nor cell.
 */
export function predictorPlan(argv: PredictorArgv): PredictorPlan {
  // the library's own range: NaN would refuse every row and -1 accept every one
  if (!JoinOptionsSchema.shape.minDice.safeParse(argv.minDice).success) {
    throw new UsageError(`--min-dice ${argv.minDice}: expected a Dice RCA (Mean) from 0 to 1`);
  }
  if (argv.checkpoint !== undefined) checkCheckpoint(argv.checkpoint);
  return {
    imageLimits: imageLimitsFrom(argv),
    source: resolveModelSource(argv.model, argv.checkpoint ?? null),
    minDice: argv.minDice,
  };
}

/** A missing or unreadable checkpoint is named here, not by the native loader after the slow work. */
function checkCheckpoint(file: string): void {
  try {
    const kind = nonFileKind(statSync(file));
    if (kind) throw new UsageError(`--checkpoint ${file}: not a regular file (${kind})`);
    accessSync(file, constants.R_OK);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--checkpoint ${file}: cannot read it (${(e as NodeJS.ErrnoException).code})`);
  }
}

/**
 * The segmenter, then the classifier over the plan's source: loaded now, so a broken file fails at
 * start. A classifier that fails to load frees the segmenter opened for it.
 */
export async function openPredictor(argv: PredictorArgv, plan: PredictorPlan): Promise<MaskingPredictor> {
  const { source, imageLimits } = plan;
  const untrained = argv.allowUntrained === true;
  const bf16 = argv.bf16 ? { bf16: true } : {};
  const segmenter = argv.segmenter
    ? await openSegmenter(argv.segmenter, { device: argv.device, untrained, ...bf16 })
    : null;
  try {
    return await MaskingPredictor.load({
      segmenter,
      untrained,
      modelDir: source.modelDir,
      checkpoint: source.checkpoint,
      ...(argv.kind ? { kind: argv.kind } : {}),
      device: argv.device,
      ...bf16,
      ...(source.overlay ? { overlay: source.overlay } : {}),
      ...(source.preprocess ? { preprocess: { ...source.preprocess } } : {}),
      ...(argv.maxBatch === undefined ? {} : { maxBatch: argv.maxBatch }),
      imageLimits,
    });
  } catch (e) {
    await segmenter?.dispose();
    throw e;
  }
}
