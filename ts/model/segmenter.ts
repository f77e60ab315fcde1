/**
 * Lung/heart segmenter over the native addon (native/segmenter.cc): a TorchScript U-Net exported by
 * tools/segmenter_export.py whose `segment(x)` gives per-pixel logits for right lung, left lung and
 * heart. Trained with BCE-with-logits + soft Dice and AdamW; predicts region bit masks (REGION_BITS:
 * 1 right lung, 2 left lung, 4 heart) on the model grid. Inputs are normalised [n,3,S,S] float32
 * images (the classifier's preprocessing) or cache records, whose mask plane carries the training
 * targets (bits 3-5), so training reads records and decodes nothing.
 */
import { join } from 'node:path';
import type { LinkPolicy } from '../common/files.js';
import { checkArg, parseOptions, positiveInt, typedArray } from '../common/options.js';
import { type DeviceSpec, loadNative, type NativeSegmenter, type NativeSegmenterInfo } from '../native.js';
import { CheckpointedLifecycle } from './checkpoint-lifecycle.js';
import { holdArray, holdImages } from './hold.js';
import { withJsStack } from './js-stack.js';
import { readSegmenterMeta, type SegmenterMeta } from './meta.js';
import { SegmenterLoadSchema } from './options.js';
import { checkRecords, type ImageInput, isRecordBatch, type RecordBatch } from './records.js';

/** What a predictor needs from a segmenter (the service codes against this). */
export interface SegmenterLike {
  /** Model grid side S (the classifier's image size). */
  readonly size: number;
  /**
   * False for a random-init export that has neither been trained nor loaded trained weights: its masks
   * are noise, so MaskingPredictor refuses it unless asked (`untrained: true`). Absent = trusted.
   */
  readonly trained?: boolean;
  /** Region bit masks [n,S,S] (1 right lung, 2 left lung, 4 heart) from normalised [n,3,S,S] images. */
  predictMasks(x: Float32Array, n: number): Promise<Uint8Array>;
  /** Frees the model once queued calls are done. */
  dispose(): Promise<void>;
}

/** Why an untrained segmenter is refused, and how to get past it (one wording for library and CLI). */
export function untrainedMessage(what: string): string {
  return (
    `segmenter ${what} was never trained (a random-init export), so its masks are noise; give the folder ` +
    "`cxrmask segmenter train` wrote (or the demo's <data>/segmenter), or accept it explicitly with " +
    '`untrained: true` (CLI: --allow-untrained)'
  );
}

/** Options of `Segmenter.load`. */
export interface SegmenterLoadOptions {
  device?: DeviceSpec;
  /** AdamW learning rate: a finite number from 0 to 1 (default 1e-3). */
  lr?: number;
  /** AdamW weight decay (default 1e-4). */
  weightDecay?: number;
  /** Max global gradient L2 norm; 0 = off. */
  gradClip?: number;
  /** bf16 autocast where supported (CUDA; see bf16Active). */
  bf16?: boolean;
  /** Probability above which a pixel belongs to a structure (default 0.5). */
  threshold?: number;
}

/** What one segmenter training step reports. */
export interface SegmentStep {
  /** BCE + (1 − soft Dice) of the batch before the step. */
  loss: number;
  /** Soft Dice (mean over the 3 structures) of the batch before the step. */
  dice: number;
  gradNorm: number;
  step: number;
}

export class Segmenter extends CheckpointedLifecycle<NativeSegmenter> implements SegmenterLike {
  /** save() stages its file and renames it into place itself, honouring `links`: a run's checkpoint is one call. */
  readonly savesAtomically = true;
  readonly size: number;
  readonly threshold: number;
  private weightsLoaded = false;

  private constructor(
    native: NativeSegmenter,
    readonly meta: SegmenterMeta,
    readonly dir: string,
    threshold: number,
  ) {
    super(native, 'Segmenter');
    this.size = meta.imageSize;
    this.threshold = threshold;
  }

  /**
   * Loads `<dir>/seg.pt` (random-init export or any TorchScript module with `segment(x)`).
   * @throws {TypeError} (rejects) `dir` not a non-empty string, or an unknown option.
   * @throws {RangeError} (rejects) a bad `device`, an lr that is not a finite number from 0 to 1, a
   *   negative/non-finite weightDecay or gradClip,
   *   or a threshold outside (0, 1).
   * @throws {Error} (rejects) `<dir>/model.json` is missing, not a segmenter's, or the addon cannot load.
   * @throws {NativeError} (rejects) LibTorch cannot load the file, or it has no `segment` method.
   */
  static async load(dir: string, options: SegmenterLoadOptions = {}): Promise<Segmenter> {
    if (typeof dir !== 'string' || dir === '')
      throw new TypeError('segmenter dir must be a non-empty string');
    const { threshold, ...o } = parseOptions(SegmenterLoadSchema, options, 'Segmenter.load');
    const meta = readSegmenterMeta(dir);
    const native = await withJsStack(
      loadNative().Segmenter.create({ ...o, modelPath: join(dir, meta.files?.model ?? 'seg.pt') }),
      'Segmenter.load',
    );
    return new Segmenter(native, meta, dir, threshold);
  }

  /** The native model's facts: parameters, bf16, device, step. */
  get info(): NativeSegmenterInfo {
    return this.live().info();
  }
  /** The device the model runs on, e.g. 'cpu' or 'cuda:0'. */
  get device(): string {
    return this.info.device;
  }
  /** Whether bf16 autocast is on (asked for, and supported by the device). */
  get bf16Active(): boolean {
    return this.info.bf16Active;
  }
  /** Optimiser steps taken (restored by `load`). */
  get step(): number {
    return this.info.step;
  }
  /** Whether these weights were trained: an export from trained weights, a load() of saved ones, or a step. */
  get trained(): boolean {
    return this.meta.source !== 'random-init' || this.weightsLoaded || this.step > 0;
  }

  /**
   * One AdamW step. Targets: `regionBits` [n,S,S] (1 right lung, 2 left lung, 4 heart), or, for cache
   * records without it, the records' own filled regions. Records are segmented as original images.
   * @throws {TypeError} (synchronously) `x` or `regionBits` of the wrong type; float images without
   *   `regionBits`.
   * @throws {RangeError} (synchronously) `n` not a positive integer or a wrong length.
   * @throws {Error} (synchronously) the segmenter is disposed.
   * @throws {NativeError} (rejects) region bits above 7, or the native step fails.
   */
  trainStep(x: ImageInput, n: number, regionBits?: Uint8Array | null): Promise<SegmentStep> {
    checkArg(positiveInt, n, 'n');
    const native = this.live();
    const stack = new Error('Segmenter.trainStep');
    const { data, shape, pixels } = this.input(x, n);
    if (regionBits !== undefined && regionBits !== null) {
      const want = n * this.size * this.size;
      checkArg(typedArray(Uint8Array, want, `[${n},${this.size},${this.size}]`), regionBits, 'regionBits');
    } else if (!pixels) {
      throw new TypeError('regionBits ([n,S,S] Uint8Array) is required with float images');
    }
    const held = holdImages(data, shape, pixels);
    const heldBits = regionBits ? holdArray(regionBits, 'regionBits') : null;
    return this.queue.run(() => withJsStack(native.trainStep(held, shape, heldBits, pixels), stack));
  }

  /**
   * Per-pixel logits [n,3,S,S] (right lung, left lung, heart).
   * @throws {TypeError|RangeError} (synchronously) a bad `x` or `n`; {Error} when disposed.
   * @throws {NativeError} (rejects) the native forward fails.
   */
  logits(x: ImageInput, n: number): Promise<Float32Array> {
    checkArg(positiveInt, n, 'n');
    const native = this.live();
    const stack = new Error('Segmenter.logits');
    const { data, shape, pixels } = this.input(x, n);
    const held = holdImages(data, shape, pixels);
    return this.queue.run(() => withJsStack(native.logits(held, shape, pixels), stack));
  }

  /**
   * Region bit masks [n,S,S]: bit 1 right lung, 2 left lung, 4 heart where the structure's probability
   * is above the threshold.
   * @throws {TypeError|RangeError} (synchronously) a bad `x` or `n`; {Error} when disposed.
   * @throws {NativeError} (rejects) the native forward fails.
   */
  predictMasks(x: ImageInput, n: number): Promise<Uint8Array> {
    checkArg(positiveInt, n, 'n');
    const native = this.live();
    const stack = new Error('Segmenter.predictMasks');
    const { data, shape, pixels } = this.input(x, n);
    const held = holdImages(data, shape, pixels);
    return this.queue.run(() => withJsStack(native.predictMasks(held, shape, this.threshold, pixels), stack));
  }

  /**
   * Weights, AdamW moments and step (exact resume), or with `weightsOnly` the weights alone. A symlink
   * is written through, or with `links: 'replace'` replaced, as Classifier.save does.
   * @throws {TypeError} (synchronously) `path` not a non-empty string or holding a NUL, an unknown
   *   option, or `weightsOnly` not a boolean.
   * @throws {RangeError} (synchronously) `links` not 'follow' or 'replace'.
   * @throws {DataError} (rejects) `not-a-file`: the path (or the link's target) is a FIFO, device,
   *   socket or folder, when called or just before the file is renamed into place (put there
   *   meanwhile); `target-changed`: a link at the path was pointed elsewhere meanwhile.
   * @throws {NativeError} (rejects) the file cannot be written.
   */
  save(path: string, options: { weightsOnly?: boolean; links?: LinkPolicy } = {}): Promise<void> {
    return this.saveFile(path, options);
  }

  /**
   * Restores what save() wrote; all or nothing. A weights-only file keeps the current optimiser state.
   * @throws {TypeError} (synchronously) `path` not a non-empty string, or holding a NUL.
   * @throws {DataError} (rejects) `not-a-file`: the path is a FIFO, device, socket or folder.
   * @throws {NativeError} (rejects) the file is missing, unreadable or from another model.
   */
  load(path: string): Promise<void> {
    return this.loadFile(path, () => {
      this.weightsLoaded = true;
    });
  }

  /** Native arguments for n images; records are always segmented as the original (unpainted) image. */
  private input(
    x: ImageInput,
    n: number,
  ): { data: Float32Array | Uint8Array; shape: number[]; pixels?: RecordBatch['pixels'] } {
    if (isRecordBatch(x)) {
      const shape = checkRecords(x, n, this.size);
      return { data: x.records, shape, pixels: { ...x.pixels, original: true, masked: false } };
    }
    const shape = [n, 3, this.size, this.size];
    checkArg(typedArray(Float32Array, n * 3 * this.size * this.size, `[${shape.join(',')}]`), x, 'x');
    return { data: x, shape };
  }
}
