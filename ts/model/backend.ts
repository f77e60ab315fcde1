/**
 * What the layers above need from the models, as interfaces: `realModelBackend()` (backend-real.ts)
 * binds them to the addon's classes; tests may pass a pure-JS stand-in to check orchestration without
 * the native addon. The experiment's backend adds the image cache on top (ts/experiment/backend.ts).
 */
import type { LinkPolicy } from '../common/files.js';
import type { NativeProcessGroup } from '../native.js';
import type { Attribution, AttributionOptions } from './attribution.js';
import type { ClassifierOptions } from './classifier.js';
import type { TrainedKind } from './kinds.js';
import type { ImageInput } from './records.js';

/** The CLIP model as a run uses it (ClipModel implements it). */
export interface ClipLike {
  embedDim: number;
  logitScale: number;
  device?: string;
  /** Image embeddings `[rows, D]`. */
  encodeImage(x: ImageInput, n: number, opts?: { bf16?: boolean }): Promise<Float32Array>;
  /** Text embeddings `[n, D]` of token ids `[n, L]`. */
  encodeText(ids: BigInt64Array, n: number): Promise<Float32Array>;
  /** The zero-shot logit against prompt embeddings, explained (ClipModel.attribute); optional. */
  attribute?(
    x: ImageInput,
    n: number,
    text: Float32Array,
    options?: AttributionOptions,
  ): Promise<Attribution>;
  /** embedding·weight + bias explained (ClipModel.attributeLinear); optional. */
  attributeLinear?(
    x: ImageInput,
    n: number,
    weight: Float32Array,
    bias: number,
    options?: AttributionOptions,
  ): Promise<Attribution>;
  /** Frees the native model once queued calls are done. */
  dispose(): void | Promise<void>;
}

/** The text tokenizer as a run uses it (TextTokenizer implements it). */
export interface TokenizerLike {
  /** Token ids, row-major `[texts.length, contextLength]`. */
  encode(texts: string[]): BigInt64Array;
  contextLength: number;
}

/** A step's loss; `losses`, when given, holds every unread step's loss up to this one (Classifier.trainStep). */
export interface StepLoss {
  loss: number;
  losses?: number[];
}

/** The classifier as a run uses it (Classifier implements it). */
export interface ClassifierLike {
  /** One optimizer step on `n` rows; the loss before the step (read lazily with `readLoss: false`). */
  trainStep(
    x: ImageInput,
    n: number,
    labels: Float32Array,
    labelMask?: Float32Array,
    options?: { readLoss?: boolean },
  ): Promise<StepLoss>;
  /** When present, steps read their loss only once per logging interval (readLoss) and this at the end. */
  readLosses?(): Promise<StepLoss>;
  /** Sigmoid probabilities `[n, numLabels]`. */
  predict(x: ImageInput, n: number): Promise<Float32Array>;
  /**
   * Full state for resume, or `weightsOnly` (best.ckpt: what prediction needs). A run writes its
   * checkpoints through a temp path it renames into place, unless `savesAtomically` is true.
   */
  save(path: string, opts?: { weightsOnly?: boolean; links?: LinkPolicy }): Promise<void>;
  /**
   * True when save() itself writes atomically (a temp file renamed into place) and, with
   * `links: 'replace'`, replaces a symlink at the path instead of writing through it: a run then
   * calls it once per checkpoint. Absent or false (a plain write), the run stages the write itself.
   */
  readonly savesAtomically?: boolean;
  /** Restores what save() wrote. */
  load(path: string): Promise<void>;
  /** One finding's logit explained (Classifier.attribute; needs the image tower); optional. */
  attribute?(x: ImageInput, n: number, label: number, options?: AttributionOptions): Promise<Attribution>;
  /** The head's weight [numLabels, inputDim] and bias [numLabels] (Classifier.headWeights); optional. */
  headWeights?(): Promise<{ weight: Float32Array; bias: Float32Array }>;
  /** Frees the native model once queued calls are done. */
  dispose(): void | Promise<void>;
  /** Data parallel (ts/distributed): join a group; a step for a rank with no rows. */
  attachGroup?(group: { readonly nativeGroup: NativeProcessGroup } | null): Promise<void>;
  /** A data-parallel step for a rank with no rows left: joins the gradient all-reduce with zeros. */
  idleStep?(options?: { readLoss?: boolean }): Promise<StepLoss>;
}

/** What a classifier checkpoint records about itself (Classifier.readHeader). */
export interface CheckpointHeader {
  /** The kind save() recorded (or, in a file from before it did, what the file's tensors show). */
  kind: TrainedKind;
  /** A head over feature vectors, without the image tower's weights. */
  headOnly: boolean;
  /** The image tower's weights are in the file but were never trained. */
  freezeEncoder: boolean;
  inputDim: number;
  numLabels: number;
}

/** A trained segmenter as the grid uses it (ts/model/segmenter.ts). */
export interface SegmenterBackendLike {
  /** Region bits `[n, S, S]` (lungs, heart) of each image. */
  predictMasks(x: ImageInput, n: number): Promise<Uint8Array>;
  /** Frees the native model once queued calls are done. */
  dispose(): Promise<void>;
}

/** Where models come from: the addon (realModelBackend) or a pure-JS stand-in in tests. */
export interface ModelBackend {
  name: string;
  /** The CLIP towers of an exported model folder, on `device`. */
  loadClip(dir: string, device: string): Promise<ClipLike>;
  /**
   * The image tower's embedding width of an exported model folder, without loading it; optional:
   * openModel reads model.json's embedDim without it (a stand-in whose towers are not in model.json says it here).
   */
  embedDim?(dir: string): number;
  /** The text tokenizer of an exported model folder. */
  loadTokenizer(dir: string): TokenizerLike | Promise<TokenizerLike>;
  /** A new classifier (random head; the image tower from `modelDir` unless head-only). */
  createClassifier(opts: ClassifierOptions): Promise<ClassifierLike>;
  /** What a checkpoint written by a classifier's save() says about itself. */
  readCheckpointHeader(path: string): Promise<CheckpointHeader>;
  /** A segmenter with trained weights, for test-time masks (config.segmenter); optional. */
  loadSegmenter?(
    dir: string,
    weights: string,
    o: { device: string; threshold: number },
  ): Promise<SegmenterBackendLike>;
  /** Resolved device ('cpu' | 'cuda') for a requested one ('auto' | 'cpu' | 'cuda'). */
  resolveDevice(requested: string): string;
  /** Intra-op threads of the compute library. */
  setThreads?(n: number): void;
  /** Library versions results.json records (torch, CUDA, the addon). */
  versions(): Record<string, unknown>;
}
