/** The cache's on-disk description (cache.json) and entry shape: shared by the writer (cache-build.ts) and the reader (cache.ts). */
import type { z } from 'zod';
import type { IndexEntry, IndexRowFilters, Split } from '../data/mimic.js';
import type { ContourOptionsSchema } from '../masks/overlay.js';
import type { ShardInfo } from './cache-verify.js';
import type { ResolvedPreprocess } from './preprocess.js';

/**
 * 2: shards carry size + SHA-256, cache.json the entries digest and the join settings.
 * 3: the mask plane also holds the filled regions (bits 3-5, maskPlane in ../masks/overlay.ts).
 */
export const CACHE_VERSION = 3;

export interface CacheSummary {
  dir: string;
  key: string;
  planned: number;
  cached: number;
  perSplit: Record<Split, number>;
  skipped: { counts: Record<string, number>; examples: Record<string, string[]> };
  shardsBuilt: number;
  shardsReused: number;
  /**
   * Shards an earlier build left in the folder that were rebuilt, by why: `image-limits` (other
   * --max-pixels / --max-image-size / formats), `recovered-images` (an image that had failed now
   * decodes), `changed-images` (an image's file has another size or modification time than when it
   * was cached: replaced under the same path), `plan` (other images, CheXmask rows or settings),
   * `damaged` (not as its manifest says).
   */
  rebuilt: Record<string, number>;
  /** Images that had failed in a reusable shard's earlier build and were tried again (only those are read). */
  retried: number;
  /** Of the retried images, how many decode now and are cached (their shards were rebuilt). */
  recovered: number;
  /** Cached images whose file changed since (size or mtime): re-decoded, their shards rebuilt. */
  changed: number;
  /**
   * Reused shards from before source files were recorded: kept as they were (a replaced image
   * there is not seen), their files' current sizes and times recorded now.
   */
  unstamped: number;
  seconds: number;
  /** Images decoded per second in this run (reused shards excluded). */
  imagesPerSecond: number;
  chexmask?: unknown;
}

/** The settings that decided which images (and labels) the cache holds; recorded by runs. */
export interface CacheBuildSettings {
  minDice: number;
  labelPolicy: { uncertain: string; blank: string } | null;
  requireMask: boolean;
  /**
   * The CheXmask CSV the rows came from (a path given to buildCache, or `chexmaskCsv` with joined
   * rows); null when unknown. Where `segmenter eval` reads Dice RCA; not part of the cache key.
   */
  chexmask: string | null;
  /**
   * The index's row filters, which decided which images it listed: null when the caller did not say
   * (an index without summary.json); absent in caches built before they were recorded.
   */
  rows?: IndexRowFilters | null;
}

export interface CacheMeta {
  version: number;
  key: string;
  size: number;
  recordBytes: number;
  preprocess: ResolvedPreprocess;
  contour: z.output<typeof ContourOptionsSchema>;
  shards: ShardInfo[];
  count: number;
  skipped: CacheSummary['skipped'];
  /** SHA-256 of entries.jsonl. */
  entriesSha256: string;
  /** One digest over entries and shard checksums (cacheDigest). */
  digest: string;
  build: CacheBuildSettings;
}

export interface CachedEntry extends IndexEntry {
  shard: number;
  slot: number;
}
