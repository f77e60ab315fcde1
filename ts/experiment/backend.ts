/**
 * What the experiment layer needs from the model and data layers (docs/contracts.md), as interfaces.
 * `realBackend()` binds them to ts/model/* and ts/data; tests may pass a pure-JS stand-in to check
 * orchestration, resume and reports without the native addon.
 */
import type { Split } from '../data/mimic.js';
import type { Batch as FloatBatch } from '../images/cache.js';

import type { ClassifierCreateOptions } from '../model/classifier.js';
import type { ImageInput } from '../model/records.js';
import type { NativeProcessGroup } from '../native.js';
import type { Variant } from './config.js';

/** FloatBatch: normalised float32 images (the reference path; figures and services use it). */
export type { FloatBatch, Split };

/** The data layer's batch with `x` widened: images or features (float32), or cache records the addon paints and normalises. */
export type Batch = Omit<FloatBatch, 'x'> & { x: ImageInput };

/** One image of a cache: its id, split and labels. */
export interface CacheEntryLike {
  dicomId: string;
  split: Split | string;
  labels?: number[];
  labelMask?: number[];
  [k: string]: unknown;
}

/** The image cache as a run reads it: entries, split indices and batches. */
export interface CacheLike {
  entries: CacheEntryLike[];
  /** Facts a run records as its data fingerprint (fingerprint.ts), when the cache has them. */
  dir?: string;
  key?: string;
  digest?: string;
  build?: unknown;
  /** Images the cache build left out, per reason (corrupt/missing JPEG, no CheXmask row, …). */
  skipped?: { counts: Record<string, number> };
  /** Indices of the entries in `split`. */
  indicesOf(split: Split): number[];
  /** Float32 images and labels of these entries, original or masked. */
  batch(indices: number[], variant: Variant): FloatBatch | Promise<FloatBatch>;
  /**
   * The same images as cache records for the addon's uint8 path, read off the main thread; with both
   * variants the model gets 2n rows (originals, then masked) from one read. Optional: without it the
   * float32 `batch` is used.
   */
  recordBatch?(indices: number[], variants: readonly Variant[]): Promise<Batch>;
  /** Releases the open shard files. */
  close?(): void;
}

/** The CLIP model as a run uses it (ClipModel implements it). */
export interface ClipLike {
  embedDim: number;
  logitScale: number;
  device?: string;
  /** Image embeddings `[rows, D]`. */
  encodeImage(x: ImageInput, n: number, opts?: { bf16?: boolean }): Promise<Float32Array>;
  /** Text embeddings `[n, D]` of token ids `[n, L]`. */
  encodeText(ids: BigInt64Array, n: number): Promise<Float32Array>;
  /** Frees the native model once queued calls are done. */
  dispose(): void;
}

/** The text tokenizer as a run uses it (TextTokenizer implements it). */
export interface TokenizerLike {
  /** Token ids, row-major `[texts.length, contextLength]`. */
  encode(texts: string[]): BigInt64Array;
  contextLength: number;
}

/** Classifier.create's options, with the device as the experiment resolves it ('cpu' | 'cuda'). */
export type ClassifierOptions = Omit<ClassifierCreateOptions, 'device'> & { device?: string };

/** A step's loss; `losses`, when given, holds every unread step's loss up to this one (Classifier.trainStep). */
export interface StepLoss {
  loss: number;
  losses?: number[];
}

/** The classifier as a run uses it (Classifier implements it). */
export interface ClassifierLike {
  /** One optimiser step on a batch; resolves with the loss (NaN when not read). */
  trainStep(
    x: ImageInput,
    n: number,
    labels: Float32Array,
    labelMask?: Float32Array,
    options?: { readLoss?: boolean },
  ): Promise<StepLoss>;
  /** When present, steps read their loss only once per logging interval (readLoss) and this at the end. */
  readLosses?(): Promise<StepLoss>;
  /** Sigmoid probabilities `[rows, numLabels]`. */
  predict(x: ImageInput, n: number): Promise<Float32Array>;
  /** Full state for resume, or `weightsOnly` (best.ckpt: what prediction needs). */
  save(path: string, opts?: { weightsOnly?: boolean }): Promise<void>;
  /** Restores a state written by `save`. */
  load(path: string): Promise<void>;
  /** Frees the native model once queued calls are done. */
  dispose(): void;
  /** Data parallel (ts/distributed): join a group; a step for a rank with no rows. */
  attachGroup?(group: { readonly nativeGroup: NativeProcessGroup } | null): Promise<void>;
  /** A data-parallel step without rows, so that every rank runs the same number of steps. */
  idleStep?(options?: { readLoss?: boolean }): Promise<StepLoss>;
}

/** A trained segmenter as the grid uses it (ts/model/segmenter.ts). */
export interface SegmenterBackendLike {
  /** Region bit masks `[n, S, S]` (1 right lung, 2 left lung, 4 heart). */
  predictMasks(x: ImageInput, n: number): Promise<Uint8Array>;
  /** Frees the model once queued calls are done. */
  dispose(): Promise<void>;
}

/**
 * What an experiment run needs from the model and data layers; `realBackend()` is the one over the addon,
 * tests may pass their own.
 */
export interface Backend {
  name: string;
  /** Opens the image cache in `dir`. */
  openCache(dir: string): CacheLike | Promise<CacheLike>;
  /** Loads the exported CLIP model in `dir` onto `device`. */
  loadClip(dir: string, device: string): Promise<ClipLike>;
  /** Loads the text tokenizer of the exported model in `dir`. */
  loadTokenizer(dir: string): TokenizerLike | Promise<TokenizerLike>;
  /** Creates a classifier (a fine-tuned encoder with a head, or a head over features). */
  createClassifier(opts: ClassifierOptions): Promise<ClassifierLike>;
  /** A segmenter with trained weights, for test-time masks (config.segmenter); optional. */
  loadSegmenter?(
    dir: string,
    weights: string,
    o: { device: string; threshold: number },
  ): Promise<SegmenterBackendLike>;
  /** Resolved device ('cpu' | 'cuda') for a requested one ('auto' | 'cpu' | 'cuda'). */
  resolveDevice(requested: string): string;
  /** Sets the intra-op thread count for later model calls. */
  setThreads?(n: number): void;
  /** Versions recorded in a run's results (torch, CUDA, the addon). */
  versions(): Record<string, unknown>;
}
