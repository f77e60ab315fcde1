/** The cache's on-disk description (cache.json) and entry shape: shared by the writer (cache-build.ts) and the reader (cache.ts). */
import type { z } from 'zod';
import { DataError } from '../common/errors.js';
import { readJsonFile } from '../common/io.js';
import type { IndexEntry, IndexRowFilters, Split } from '../data/mimic.js';
import { computeGeometry } from '../masks/geometry.js';
import type { ContourOptionsSchema } from '../masks/overlay.js';
import type { ShardInfo } from './cache-verify.js';
import type { ResolvedPreprocess } from './preprocess.js';

/**
 * 2: shards carry size + SHA-256, cache.json the entries digest and the join settings.
 * 3: the mask plane also holds the filled regions (bits 3-5, maskPlane in ../masks/overlay.ts).
 */
export const CACHE_VERSION = 3;

/**
 * What decodePlane made of a source image, for caches whose format did not change (CACHE_VERSION) but
 * whose pixels may: recorded in cache.json and each shard manifest; absent means 1.
 * 2 (2026-12-06): enlarging (cubic, linear) at Pillow's pixel centres, and transparency composited on black at
 * every size and bit depth. Not part of the key: a cache of large opaque images decodes the same.
 */
export const DECODER_REVISION = 2;

/** What each decoder revision changed, for the warnings about caches decoded before it. */
const DECODER_CHANGES: Record<number, string> = {
  2:
    "images smaller than the cache size were enlarged with libvips' own pixel centres (26-52/255 off " +
    'open_clip/PIL; now within 2/255 inside, up to 8 at textured borders, for the cubic and linear ' +
    'kernels), and transparent ' +
    'pixels of 16-bit images, and of 8-bit ones that were not resized, kept their stored gray (now black)',
};

/**
 * Whether revision 2's changes can reach an image of a cache at `pp`, from what the index recorded:
 * it is enlarged on some axis, its size is not recorded ('unknown'), or it is a PNG (transparency).
 * A JPEG or DICOM larger than the cache size decodes as it did.
 */
export function decoderChangeReaches(
  e: Pick<IndexEntry, 'path' | 'width' | 'height'>,
  pp: Pick<ResolvedPreprocess, 'size' | 'resize'>,
): 'enlarged' | 'unknown' | 'png' | null {
  if (/\.png$/i.test(e.path)) return 'png';
  if (!e.width || !e.height) return 'unknown';
  const g = computeGeometry(e.width, e.height, pp.size, pp.resize);
  return g.resizeW > e.width || g.resizeH > e.height ? 'enlarged' : null;
}

/** What the decoder revisions after `revision` changed, in words. */
export function decoderChangesSince(revision: number): string {
  const out: string[] = [];
  for (let r = revision + 1; r <= DECODER_REVISION; r++) if (DECODER_CHANGES[r]) out.push(DECODER_CHANGES[r]);
  return out.join('; ');
}

/** A cache.json's or shard manifest's decoder revision (1 when it records none). */
export const decoderRevision = (m: { decoder?: number }): number => m.decoder ?? 1;

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
  /** Reused shards decoded by an older decoder revision (DECODER_REVISION): kept, with a warning. */
  olderDecoder: number;
  /** The oldest decoder revision among the cache's shards, as cache.json records it. */
  decoder: number;
  /**
   * The shard size an earlier build of this folder used, kept instead of the one asked (a new layout
   * would change the cache's digest, and the runs on it could not resume); absent when they agree.
   */
  keptShardSize?: { kept: number; asked: number };
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
  /** The oldest decoder revision among its shards (DECODER_REVISION); absent in caches built before it. */
  decoder?: number;
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

/**
 * cache.json's largest sane size: a few KB plus the skipped images' list, which at 243 k images with
 * reasons stays in the tens of MB.
 */
const MAX_CACHE_JSON_BYTES = 256 * 1024 * 1024;

/**
 * A cache.json, read with the house JSON reader (a FIFO or device refused, the size capped, a BOM
 * dropped), its shape checked by the caller (checkMeta).
 * @throws {DataError} `bad-cache` naming the file.
 */
export function readCacheMeta(metaPath: string): CacheMeta {
  try {
    return readJsonFile(metaPath, 'cache description', {
      maxBytes: MAX_CACHE_JSON_BYTES,
    }) as unknown as CacheMeta;
  } catch (e) {
    throw new DataError('bad-cache', `unreadable cache description: ${(e as Error).message}`, {
      file: metaPath,
    });
  }
}
