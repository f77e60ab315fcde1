/**
 * What the layers above need from the models, as interfaces: `realModelBackend()` (backend-real.ts)
 * binds them to the addon's classes; tests may pass a pure-JS stand-in to check orchestration without
 * the native addon. The experiment's backend adds the image cache on top (ts/experiment/backend.ts).
 */
import type { NativeProcessGroup } from '../native.js';
import type { Attribution, AttributionOptions } from './attribution.js';
import type { ClassifierOptions } from './classifier.js';
import type { TrainedKind } from './kinds.js';
import type { ImageInput } from './records.js';

export interface ClipLike {
  embedDim: number;
  logitScale: number;
  device?: string;
  encodeImage(x: ImageInput, n: number, opts?: { bf16?: boolean }): Promise<Float32Array>;
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
  dispose(): void | Promise<void>;
}

export interface TokenizerLike {
  encode(texts: string[]): BigInt64Array;
  contextLength: number;
}

/** A step's loss; `losses`, when given, holds every unread step's loss up to this one (Classifier.trainStep). */
export interface StepLoss {
  loss: number;
  losses?: number[];
}

export interface ClassifierLike {
  trainStep(
    x: ImageInput,
    n: number,
    labels: Float32Array,
    labelMask?: Float32Array,
    options?: { readLoss?: boolean },
  ): Promise<StepLoss>;
  /** When present, steps read their loss only once per logging interval (readLoss) and this at the end. */
  readLosses?(): Promise<StepLoss>;
  predict(x: ImageInput, n: number): Promise<Float32Array>;
  /** Full state for resume, or `weightsOnly` (best.ckpt: what prediction needs). */
  save(path: string, opts?: { weightsOnly?: boolean }): Promise<void>;
  load(path: string): Promise<void>;
  /** One finding's logit explained (Classifier.attribute; needs the image tower); optional. */
  attribute?(x: ImageInput, n: number, label: number, options?: AttributionOptions): Promise<Attribution>;
  /** The head's weight [numLabels, inputDim] and bias [numLabels] (Classifier.headWeights); optional. */
  headWeights?(): Promise<{ weight: Float32Array; bias: Float32Array }>;
  dispose(): void | Promise<void>;
  /** Data parallel (ts/distributed): join a group; a step for a rank with no rows. */
  attachGroup?(group: { readonly nativeGroup: NativeProcessGroup } | null): Promise<void>;
  idleStep?(options?: { readLoss?: boolean }): Promise<StepLoss>;
}

/** What a classifier checkpoint records about itself (Classifier.readHeader). */
export interface CheckpointHeader {
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
  predictMasks(x: ImageInput, n: number): Promise<Uint8Array>;
  dispose(): Promise<void>;
}

export interface ModelBackend {
  name: string;
  loadClip(dir: string, device: string): Promise<ClipLike>;
  loadTokenizer(dir: string): TokenizerLike | Promise<TokenizerLike>;
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
  setThreads?(n: number): void;
  versions(): Record<string, unknown>;
}
