/**
 * Image tower + linear head (fine-tuning / linear probing), or a head alone over cached feature
 * vectors. Loss: BCE-with-logits averaged over the labels whose mask is 1 (the paper's Eq. 2 with
 * U-Ignore). Optimiser: AdamW with separate learning rates for encoder and head.
 */
import { join } from 'node:path';
import { DataError } from '../common/errors.js';
import { checkPathArg, type LinkPolicy, nothingAt, refuseNonFile } from '../common/files.js';
import { checkArg, parseOptions, positiveCount, positiveInt, typedArray } from '../common/options.js';
import {
  type DeviceSpec,
  loadNative,
  type NativeClassifier,
  type NativeClassifierHeader,
  type NativeClassifierInfo,
  type NativeProcessGroup,
  type NativeStepResult,
} from '../native.js';
import {
  type Attribution,
  type AttributionOptions,
  attributionOptions,
  attributionResult,
} from './attribution.js';
import { CheckpointedLifecycle } from './checkpoint-lifecycle.js';
import { holdArray, holdImages } from './hold.js';
import { withJsStack } from './js-stack.js';
import { modelFile, readModelMeta } from './meta.js';
import { ClassifierCreateSchema, ReadLossSchema } from './options.js';
import { checkRecords, type ImageInput, isRecordBatch, type RecordBatch, variantsOf } from './records.js';

/** Options of `Classifier.create`; the defaults are the paper's (CLASSIFIER_DEFAULTS in model/defaults.ts). */
export interface ClassifierCreateOptions {
  /** Exported model folder (clip.pt + model.json). null/absent = head-only over features. */
  modelDir?: string | null;
  /** Feature size in head-only mode (e.g. 512 for BiomedCLIP embeddings). */
  inputDim?: number;
  numLabels?: number;
  device?: DeviceSpec;
  /** AdamW learning rate of the image tower: a finite number from 0 to 1 (default 1e-5). */
  lrEncoder?: number;
  /** AdamW learning rate of the head: a finite number from 0 to 1 (default 1e-3). */
  lrHead?: number;
  weightDecay?: number;
  /** Linear probing: encoder weights fixed, features computed without gradients. */
  freezeEncoder?: boolean;
  /** Max global gradient L2 norm; 0 = off. */
  gradClip?: number;
  /** bf16 autocast (CUDA, or CPUs with AVX512-BF16/AMX; ignored elsewhere, see bf16Active). */
  bf16?: boolean;
  seed?: number;
}

/** Classifier.create's options, with the device as the experiment resolves it ('cpu' | 'cuda'). */
export type ClassifierOptions = Omit<ClassifierCreateOptions, 'device'> & { device?: string };

/**
 * A classifier over the addon: the BiomedCLIP image tower with a linear head (or the head alone over
 * features), trained with AdamW.
 */
export class Classifier extends CheckpointedLifecycle<NativeClassifier> {
  /** save() stages its file and renames it into place itself, honouring `links`: a run's checkpoint is one call. */
  readonly savesAtomically = true;
  /** Per-sample input size: 3*S*S for images, inputDim for features. */
  private readonly sampleSize: number;
  private readonly sampleShape: number[];
  private readonly imageSize: number | null;

  private constructor(
    native: NativeClassifier,
    readonly options: Readonly<ClassifierCreateOptions>,
    imageSize: number | null,
  ) {
    super(native, 'Classifier');
    this.imageSize = imageSize;
    const info = native.info();
    this.sampleShape = imageSize ? [3, imageSize, imageSize] : [info.inputDim];
    this.sampleSize = this.sampleShape.reduce((a, b) => a * b, 1);
  }

  /**
   * A classifier over the image tower of `modelDir` (joint fine-tuning), or head-only over features of
   * `inputDim` when `modelDir` is absent (linear probing).
   * @throws {TypeError} (rejects) an unknown option, or `modelDir` not a non-empty string.
   * @throws {RangeError} (rejects) `inputDim` missing without `modelDir`; `inputDim` or `numLabels` not an
   *   integer from 1 to 2^31−1; a bad `seed` or `device`; a learning rate that is not a finite number
   *   from 0 to 1 (MAX_LEARNING_RATE); a negative/non-finite weight decay or gradClip.
   * @throws {Error} (rejects) `<modelDir>/model.json` is missing or incomplete, its embedDim is not the
   *   image tower's width, or the addon cannot load.
   * @throws {NativeError} (rejects) LibTorch cannot load the model or the device.
   */
  static async create(options: ClassifierCreateOptions = {}): Promise<Classifier> {
    const { modelDir, inputDim, ...o } = parseOptions(ClassifierCreateSchema, options, 'Classifier.create');
    if (modelDir === null) checkArg(positiveCount, inputDim, 'inputDim (required without modelDir)');
    // with a model, a given inputDim is checked against the tower's width: a count all the same
    else if (inputDim !== undefined && inputDim !== null) checkArg(positiveCount, inputDim, 'inputDim');
    let imageSize: number | null = null;
    let embedDim: number | null = null;
    let modelPath: string | null = null;
    if (modelDir !== null) {
      const meta = readModelMeta(modelDir);
      imageSize = meta.imageSize;
      embedDim = meta.embedDim;
      modelPath = modelFile(modelDir, meta);
    }
    const native = await withJsStack(
      loadNative().Classifier.create({
        ...o,
        modelPath,
        // with a model, an inputDim > 0 is checked against the measured one (0: not checked);
        // head-only there is no image to size
        inputDim: (inputDim as number | null | undefined) ?? 0,
        imageSize: imageSize ?? 0,
      }),
      'Classifier.create',
    );
    // the addon measured the image tower's width with a probe: model.json must say the same
    const measured = native.info().inputDim;
    if (modelDir !== null && measured !== embedDim) {
      native.dispose();
      throw new Error(
        `${join(modelDir, 'model.json')}: embedDim ${embedDim}, but the model's image embeddings have ${measured} numbers`,
      );
    }
    return new Classifier(native, { ...options }, imageSize);
  }

  /**
   * What a checkpoint written by save() says about itself, without a classifier to load it into: its
   * kind ('linear-probe': a head over a fixed image tower; 'finetune': encoder and head trained), head
   * only or not, inputDim, numLabels. Reads the pickled header alone, none of the tensors (a
   * fine-tuned BiomedCLIP checkpoint with its optimizer state is ~1 GB).
   * @throws {TypeError} (synchronously) `path` not a non-empty string, or holding a NUL.
   * @throws {DataError} (rejects) `not-a-file`: the path is a FIFO, device, socket or folder;
   *   `missing-file`: nothing is there.
   * @throws {NativeError} (rejects) the file is unreadable or not a classifier checkpoint
   *   (ERR_INVALID_ARG, `<path> is not a classifier checkpoint (…)` or `not the zip archive torch.save
   *   writes`).
   */
  static readHeader(path: string): Promise<NativeClassifierHeader> {
    checkPathArg(path);
    try {
      // nothing there is a missing file; another stat failure (a folder it may not enter) is the
      // addon's to name
      if (!refuseNonFile(path) && nothingAt(path))
        throw new DataError('missing-file', 'no such checkpoint file', { file: path });
    } catch (e) {
      return Promise.reject(e);
    }
    const stack = new Error('Classifier.readHeader');
    return withJsStack(loadNative().Classifier.readHeader(path), stack);
  }

  /**
   * Copies of the linear head: `weight` [numLabels, inputDim] row-major and `bias` [numLabels], so that
   * logit_k = features · weight[k] + bias[k] (what predict() applies sigmoid to).
   * @throws {Error} (synchronously) the classifier is disposed.
   */
  headWeights(): Promise<{ weight: Float32Array; bias: Float32Array }> {
    const native = this.live();
    const stack = new Error('Classifier.headWeights');
    return this.queue.run(() => withJsStack(native.headWeights(), stack));
  }

  /** The native model's facts: input size, labels, head-only, device, bf16, step. */
  get info(): NativeClassifierInfo {
    return this.live().info();
  }
  /** Per-sample input size: 3·S·S for images, the feature size in head-only mode. */
  get inputDim(): number {
    return this.info.inputDim;
  }
  /** Outputs per image (`numLabels`, 5 by default). */
  get numLabels(): number {
    return this.info.numLabels;
  }
  /** True for a head over features (no encoder). */
  get headOnly(): boolean {
    return this.info.headOnly;
  }
  /** The device the model runs on, e.g. 'cpu' or 'cuda:0'. */
  get device(): string {
    return this.info.device;
  }
  /** Whether bf16 autocast is on (asked for, and supported by the device). */
  get bf16Active(): boolean {
    return this.info.bf16Active;
  }
  /**
   * One optimiser step on a batch (images, features, or cache records of one variant). Inputs are taken
   * when the call is made (ts/model/hold.ts): reusing or transferring them right after the call returned
   * does not change the step; views of `hostBytes` memory are borrowed, not copied, and must not be
   * written into until the promise settles.
   *
   * The step itself never waits for the device: gradient clipping and AdamW are queued with the loss
   * still on the device. With `readLoss` (default true) the promise then waits once for the device and
   * resolves with this step's (masked mean) loss and pre-clip gradient norm, plus `losses`: every step's
   * loss since the last step that read them, oldest first, this one last. With `readLoss: false` it
   * resolves as soon as the step is queued, with `loss` and `gradNorm` NaN and `losses` empty; a later
   * reading step returns those losses. A training loop reads once per logging interval that way. A NaN
   * or infinite loss is returned as it is, as PyTorch does (the weights are then no longer trustworthy);
   * the run's loop (trainWithCheckpoints) stops on it with a DataError `non-finite-loss`.
   * @throws {TypeError} (synchronously) `x`, `labels` or `labelMask` of the wrong type; cache records
   *   on a head-only classifier; an unknown option.
   * @throws {RangeError} (synchronously) `n` not a positive integer, a wrong length, or records asking
   *   for both variants.
   * @throws {Error} (synchronously) the classifier is disposed.
   * @throws {NativeError} (rejects) `ERR_INVALID_ARG`: a label outside [0, 1] (a raw −1 "uncertain"), naming its
   *   index; or the native step fails (e.g. out of memory).
   */
  trainStep(
    x: ImageInput,
    n: number,
    labels: Float32Array,
    labelMask?: Float32Array | null,
    options: { readLoss?: boolean } = {},
  ): Promise<NativeStepResult> {
    checkArg(positiveInt, n, 'n');
    const { readLoss } = parseOptions(ReadLossSchema, options, 'Classifier.trainStep');
    const native = this.live();
    const stack = new Error('Classifier.trainStep');
    const { data, shape, pixels } = this.input(x, n);
    if (variantsOf(x) !== 1)
      throw new RangeError('trainStep takes records of one variant (original or masked)');
    const l = native.info().numLabels;
    const perLabel = typedArray(Float32Array, n * l, `[${n},${l}]`);
    checkArg(perLabel, labels, 'labels');
    if (labelMask !== undefined && labelMask !== null) checkArg(perLabel, labelMask, 'labelMask');
    const heldX = holdImages(data, shape, pixels);
    const heldLabels = holdArray(labels, 'labels');
    const heldMask = labelMask ? holdArray(labelMask, 'labelMask') : null;
    return this.queue.run(() =>
      withJsStack(native.trainStep(heldX, shape, heldLabels, heldMask, pixels, readLoss), stack),
    );
  }

  /**
   * The losses of the steps since the last one that read them (oldest first; empty when there are
   * none), and the last step's gradient norm: one wait for the device, queued after the steps. `loss`
   * is the newest of them (NaN when none).
   * @throws {Error} (synchronously) the classifier is disposed.
   */
  readLosses(): Promise<NativeStepResult> {
    const native = this.live();
    const stack = new Error('Classifier.readLosses');
    return this.queue.run(() => withJsStack(native.readLosses(), stack));
  }

  /**
   * Sigmoid probabilities [rows, numLabels] (records asking for both variants: originals first).
   * @throws {TypeError|RangeError} (synchronously) a bad `x` or `n`, as trainStep.
   * @throws {Error} (synchronously) the classifier is disposed.
   * @throws {NativeError} (rejects) the native forward fails.
   */
  predict(x: ImageInput, n: number): Promise<Float32Array> {
    return this.infer(x, n, 'predict');
  }

  /**
   * Encoder features [rows, inputDim].
   * @throws {Error} (rejects) on a head-only classifier; (synchronously) when disposed.
   * @throws {TypeError|RangeError} (synchronously) a bad `x` or `n`, as predict.
   * @throws {NativeError} (rejects) the native forward fails.
   */
  embed(x: ImageInput, n: number): Promise<Float32Array> {
    if (this.headOnly)
      return Promise.reject(new Error('embed() needs an image encoder (this classifier is head-only)'));
    return this.infer(x, n, 'embed');
  }

  /**
   * Attribution of finding `label`'s logit to the input pixels (ts/model/attribution.ts): maps
   * [rows,S,S] (records asking for both variants: originals first).
   * @throws {TypeError|RangeError} (synchronously) a bad `x`, `n`, `label` or option; a head-only classifier.
   * @throws {Error} (synchronously) the classifier is disposed.
   * @throws {NativeError} (rejects) the native passes fail.
   */
  attribute(x: ImageInput, n: number, label: number, options: AttributionOptions = {}): Promise<Attribution> {
    checkArg(positiveInt, n, 'n');
    if (this.imageSize === null)
      throw new TypeError('attribute() needs an image encoder (this classifier is head-only)');
    const native = this.live();
    const l = native.info().numLabels;
    if (!Number.isInteger(label) || label < 0 || label >= l)
      throw new RangeError(`label must be an integer in [0,${l}), got ${String(label)}`);
    const rows = n * variantsOf(x);
    const opts = { ...attributionOptions(options, rows, this.imageSize), label };
    const stack = new Error('Classifier.attribute');
    const { data, shape, pixels } = this.input(x, n);
    const size = this.imageSize;
    const held = holdImages(data, shape, pixels);
    const heldOpts = { ...opts, baseline: opts.baseline ? holdArray(opts.baseline, 'baseline') : null };
    return this.queue.run(async () =>
      attributionResult(
        await withJsStack(native.attribute(held, shape, pixels, heldOpts), stack),
        opts.method,
        rows,
        size,
      ),
    );
  }

  /**
   * Whole trainable state: encoder + head weights, AdamW moments, step count — what resume needs. With
   * `weightsOnly` just the weights (a third of the bytes for BiomedCLIP): enough to predict. A symlink
   * is written through: its target gets the file (docs/contracts.md, Checkpoints); with
   * `links: 'replace'` (a file inside a run's own folder) the link itself is replaced by the file.
   * @throws {TypeError} (synchronously) `path` not a non-empty string or holding a NUL, an unknown
   *   option, or `weightsOnly` not a boolean.
   * @throws {RangeError} (synchronously) `links` not 'follow' or 'replace'.
   * @throws {Error} (synchronously) the classifier is disposed.
   * @throws {DataError} (rejects) `not-a-file`: the path (or the link's target) is a FIFO, device,
   *   socket or folder, when called or just before the file is renamed into place (put there
   *   meanwhile); `target-changed`: a link at the path was pointed elsewhere meanwhile.
   * @throws {NativeError} (rejects) the file cannot be written.
   */
  save(path: string, options: { weightsOnly?: boolean; links?: LinkPolicy } = {}): Promise<void> {
    return this.saveFile(path, options);
  }

  /**
   * Restores what save() wrote (the classifier must have been created with the same options). All or
   * nothing: a file that does not fit leaves the classifier as it was. A weights-only file keeps the
   * current optimiser state.
   * @throws {TypeError} (synchronously) `path` not a non-empty string, or holding a NUL.
   * @throws {Error} (synchronously) the classifier is disposed.
   * @throws {DataError} (rejects) `not-a-file`: the path is a FIFO, device, socket or folder.
   * @throws {NativeError} (rejects) the file is missing, unreadable or does not fit this classifier.
   */
  load(path: string): Promise<void> {
    return this.loadFile(path);
  }

  /**
   * Data-parallel training over a process group (ts/model/process-group.ts), or back to a single
   * process with null: copies rank 0's weights into this replica, then every trainStep averages
   * gradients and loss across the group before AdamW. Every rank must call it, and then take the
   * same number of steps (idleStep for a step without rows).
   * @throws {TypeError} (synchronously) `group` is not a ProcessGroup or null.
   * @throws {NativeError} (rejects) the broadcast fails (ERR_DIST_*).
   */
  attachGroup(group: { readonly nativeGroup: NativeProcessGroup } | null): Promise<void> {
    const native = this.live();
    const stack = new Error('Classifier.attachGroup');
    const g = group === null ? null : group.nativeGroup;
    return this.queue.run(async () => {
      await withJsStack(native.attachGroup(g), stack);
      this.grouped = g !== null;
    });
  }
  private grouped = false;

  /**
   * A data-parallel step for a rank that has no rows this step (the last, short global batch; a
   * batch whose images all failed to load): joins the group's all-reduce with no gradient, then
   * takes the same AdamW step as its peers. `readLoss` as in trainStep.
   * @throws {Error} (rejects) no group is attached.
   */
  idleStep(options: { readLoss?: boolean } = {}): Promise<NativeStepResult> {
    const native = this.live();
    const { readLoss } = parseOptions(ReadLossSchema, options, 'Classifier.idleStep');
    if (!this.grouped) return Promise.reject(new Error('idleStep() needs a process group (attachGroup)'));
    const stack = new Error('Classifier.idleStep');
    return this.queue.run(() => withJsStack(native.idleStep(readLoss), stack));
  }

  private infer(x: ImageInput, n: number, op: 'predict' | 'embed'): Promise<Float32Array> {
    checkArg(positiveInt, n, 'n');
    const native = this.live();
    const stack = new Error(`Classifier.${op}`);
    const { data, shape, pixels } = this.input(x, n);
    const held = holdImages(data, shape, pixels);
    return this.queue.run(() => withJsStack(native[op](held, shape, pixels), stack));
  }

  /** Validated native arguments for an image/feature input of n rows. */
  private input(
    x: ImageInput,
    n: number,
  ): { data: Float32Array | Uint8Array; shape: number[]; pixels?: RecordBatch['pixels'] } {
    if (isRecordBatch(x)) {
      if (this.imageSize === null)
        throw new TypeError('x: cache records need an image encoder (this classifier is head-only)');
      return { data: x.records, shape: checkRecords(x, n, this.imageSize), pixels: x.pixels };
    }
    const shape = [n, ...this.sampleShape];
    checkArg(typedArray(Float32Array, n * this.sampleSize, `[${shape.join(',')}]`), x, 'x');
    return { data: x, shape };
  }
}
