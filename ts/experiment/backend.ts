/**
 * What the experiment layer needs from the data layer (docs/contracts.md), as interfaces, on top of
 * the model layer's (ts/model/backend.ts). `realBackend()` binds them to ts/model/* and ts/images;
 * tests may pass a pure-JS stand-in to check orchestration, resume and reports without the native addon.
 */
import type { Split } from '../data/mimic.js';
// FloatBatch: normalised float32 images (the reference path; figures and services use it).
import type { Batch as FloatBatch } from '../images/cache.js';
import type { ResolvedPreprocess } from '../images/preprocess.js';
import type { ModelBackend } from '../model/backend.js';
import type { ImageInput } from '../model/records.js';
import type { Variant } from './config.js';

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
  /** The contour settings the masked images were drawn with (recorded so a served cell draws the same). */
  contour?: { thickness: number; source: 'landmarks' | 'rle' };
  /** The preprocessing the images were made with (recorded so a served cell sees images made the same way). */
  preprocess?: ResolvedPreprocess;
  /** The decoder revision its images were decoded with, the oldest among its shards (DECODER_REVISION). */
  decoder?: number;
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

/** The model backend plus the image cache the grid reads. */
export interface Backend extends ModelBackend {
  /** The uint8 image cache in `dir` (built by buildCache). */
  openCache(dir: string): CacheLike | Promise<CacheLike>;
}
