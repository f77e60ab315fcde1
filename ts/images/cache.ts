/**
 * Preprocessed on-disk cache. Each JPEG is decoded once into a size×size uint8 grayscale plane plus a
 * size×size contour bit map (1 right lung, 2 left lung, 4 heart); both are stored as fixed-size records
 * in shard files (memory-mappable raw bytes). Original and masked batches are made from the records
 * without touching the JPEG again. The cache directory is keyed by the settings that change the
 * records (resize geometry, kernel, shrink-on-load, contour thickness and source); mean/std and the
 * paint (α, colours) are applied when batches are made. Shards are written atomically (temp + rename)
 * with a manifest, so an interrupted build resumes at the first missing shard. This module is the
 * reader (Cache, openCache); the writer is cache-build.ts, the shared layout cache-format.ts.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DataError } from '../common/errors.js';
import { refuseNonFile } from '../common/files.js';
import { sha256 } from '../common/hash.js';
import { NUM_LABELS } from '../common/labels.js';
import { firstIssue, parseOptions } from '../common/options.js';
import { warnOnce } from '../common/warn-once.js';
import type { IndexEntry, Split } from '../data/mimic.js';
import {
  type ContourOptions,
  ContourOptionsSchema,
  type PaintOptions,
  paintTable,
  regionBits,
} from '../masks/overlay.js';
import type { RecordBatch } from '../model/records.js';
import {
  CACHE_VERSION,
  type CacheBuildSettings,
  type CachedEntry,
  type CacheMeta,
  type CacheSummary,
  DECODER_REVISION,
  decoderChangeReaches,
  decoderChangesSince,
  decoderRevision,
  readCacheMeta,
} from './cache-format.js';
import { cacheDigest, checkContent, damaged, verifyShards } from './cache-verify.js';
import {
  type CacheDataSettings,
  type PreprocessOptions,
  PreprocessOptionsSchema,
  planeToTensor,
  type ResolvedPreprocess,
  resolvePreprocess,
  settingsKey,
} from './preprocess.js';

export interface Batch {
  /** NCHW [n, 3, size, size], normalised. */
  x: Float32Array;
  n: number;
  labels: Float32Array;
  labelMask: Float32Array;
}

export class Cache {
  readonly dir: string;
  readonly key: string;
  readonly size: number;
  readonly preprocess: ResolvedPreprocess;
  /** The decoder revision its images were decoded with, the oldest among its shards (1 before it was recorded). */
  readonly decoder: number;
  readonly contour: z.output<typeof ContourOptionsSchema>;
  readonly entries: CachedEntry[];
  readonly skipped: CacheSummary['skipped'];
  /** Digest of entries + shard checksums, and the join settings: what a run records as its data. */
  readonly digest: string;
  readonly build: CacheBuildSettings;
  private readonly meta: CacheMeta;
  private readonly fds = new Map<number, number>();
  private readonly handles = new Map<number, Promise<FileHandle>>();
  /**
   * Where recordBatch puts records. The real backend sets the addon's host-buffer allocator
   * (ts/model/records.ts hostBytes) so model ops borrow the bytes instead of copying them.
   */
  allocate: (bytes: number) => Uint8Array = (bytes) => new Uint8Array(bytes);
  private readonly defaultTable: Float32Array;

  /**
   * Opens and verifies (cache-verify.ts): cache.json's version, entries.jsonl against its digest, every
   * entry's shard/slot, every shard's size, and shard content unless a fresh stamp vouches for it.
   */
  constructor(dir: string) {
    this.dir = dir;
    const metaPath = join(dir, 'cache.json');
    this.meta = readCacheMeta(metaPath);
    if (this.meta?.version !== CACHE_VERSION)
      throw new DataError(
        'bad-cache',
        `cache version ${this.meta?.version} ≠ ${CACHE_VERSION} (written by another cxrmask); rebuild it with \`cxrmask cache\``,
        { file: metaPath },
      );
    checkMeta(dir, this.meta);
    this.key = this.meta.key;
    this.size = this.meta.size;
    this.preprocess = this.meta.preprocess;
    this.decoder = decoderRevision(this.meta);
    this.contour = this.meta.contour;
    this.skipped = this.meta.skipped;
    this.digest = this.meta.digest;
    this.build = this.meta.build;
    const entriesPath = join(dir, 'entries.jsonl');
    // a FIFO would block this synchronous read, and with it Ctrl-C, forever
    refuseNonFile(entriesPath);
    let text: string;
    try {
      text = readFileSync(entriesPath, 'utf8');
    } catch (e) {
      throw damaged(dir, 'entries.jsonl', `unreadable: ${(e as Error).message}`);
    }
    checkContent(dir, 'entries.jsonl', sha256(text), this.meta.entriesSha256);
    this.entries = text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as CachedEntry);
    const shards = this.meta.shards;
    this.entries.forEach((e, i) => {
      if (!(e.shard >= 0 && e.shard < shards.length && e.slot >= 0 && e.slot < shards[e.shard]!.count))
        throw new DataError('bad-cache', `shard ${e.shard} slot ${e.slot} is not in cache.json`, {
          file: entriesPath,
          row: i + 1,
        });
    });
    verifyShards(dir, shards, this.meta.recordBytes);
    this.defaultTable = paintTable({});
    warnOlderDecoder(dir, this.meta, this.entries);
  }

  /** What was built and what was skipped (for run records). */
  get summary(): {
    key: string;
    count: number;
    size: number;
    preprocess: ResolvedPreprocess;
    contour: z.output<typeof ContourOptionsSchema>;
    skipped: CacheSummary['skipped'];
  } {
    return {
      key: this.key,
      count: this.entries.length,
      size: this.size,
      preprocess: this.preprocess,
      contour: this.contour,
      skipped: this.skipped,
    };
  }

  get length(): number {
    return this.entries.length;
  }

  indicesOf(split: Split): number[] {
    const out: number[] = [];
    this.entries.forEach((e, i) => {
      if (e.split === split) out.push(i);
    });
    return out;
  }

  /** The stored gray plane and contour map of entry i. */
  planes(i: number): { gray: Uint8Array; contour: Uint8Array } {
    const e = this.entries[i];
    if (!e) throw new RangeError(`cache entry ${i} out of range (0..${this.entries.length - 1})`);
    let fd = this.fds.get(e.shard);
    if (fd === undefined) {
      fd = openSync(join(this.dir, this.meta.shards[e.shard].file), 'r');
      this.fds.set(e.shard, fd);
    }
    const rb = this.meta.recordBytes;
    const buf = new Uint8Array(rb);
    const got = readSync(fd, buf, 0, rb, e.slot * rb);
    if (got !== rb)
      throw new DataError('bad-cache', `short read (${got} of ${rb} bytes)`, {
        file: this.meta.shards[e.shard].file,
        row: e.slot,
      });
    const plane = this.size * this.size;
    return { gray: buf.subarray(0, plane), contour: buf.subarray(plane) };
  }

  /**
   * A batch in the native core's layout. `masked` paints the contours (Eq. 1) with `paint`
   * (default α 1, lungs red, heart blue); mean/std come from the cache's preprocess settings
   * unless `norm` overrides them.
   */
  batch(
    indices: number[],
    variant: 'original' | 'masked',
    opts: {
      paint?: PaintOptions;
      norm?: { mean: [number, number, number]; std: [number, number, number] };
      out?: Float32Array;
    } = {},
  ): Batch {
    const n = indices.length;
    const per = 3 * this.size * this.size;
    const x = opts.out && opts.out.length >= n * per ? opts.out : new Float32Array(n * per);
    const labels = new Float32Array(n * NUM_LABELS);
    const labelMask = new Float32Array(n * NUM_LABELS);
    const pp = opts.norm ? { ...this.preprocess, ...opts.norm } : this.preprocess;
    const table = variant === 'masked' ? (opts.paint ? paintTable(opts.paint) : this.defaultTable) : null;
    indices.forEach((idx, b) => {
      const { gray, contour } = this.planes(idx);
      planeToTensor(gray, variant === 'masked' ? contour : null, pp, table, x, b * per);
      const e = this.entries[idx];
      for (let k = 0; k < NUM_LABELS; k++) {
        labels[b * NUM_LABELS + k] = e.labels[k];
        labelMask[b * NUM_LABELS + k] = e.labelMask[k];
      }
    });
    return { x, n, labels, labelMask };
  }

  /** Filled regions [n, S, S] (bit 1 right lung, 2 left lung, 4 heart) of cache rows; zero without a CheXmask row. */
  regionMasks(indices: number[]): Uint8Array {
    const hw = this.size * this.size;
    const out = new Uint8Array(indices.length * hw);
    indices.forEach((idx, b) => {
      regionBits(this.planes(idx).contour, out, b * hw);
    });
    return out;
  }

  /**
   * A batch as cache records, for the addon's uint8 path: one Uint8Array of n records (no per-pixel
   * work here; the addon paints and normalises where the model runs). `variants` picks the images the
   * model gets per record: ['original'], ['masked'] or both (then rows are originals, then masked).
   * Reads run on libuv's pool (positional reads, consecutive slots coalesced), off the main thread.
   */
  async recordBatch(
    indices: number[],
    variants: readonly ('original' | 'masked')[],
    opts: {
      paint?: PaintOptions;
      norm?: { mean: [number, number, number]; std: [number, number, number] };
    } = {},
  ): Promise<RecordInputBatch> {
    const n = indices.length;
    const rb = this.meta.recordBytes;
    const records = this.allocate(n * rb);
    const labels = new Float32Array(n * NUM_LABELS);
    const labelMask = new Float32Array(n * NUM_LABELS);
    const reads: Promise<void>[] = [];
    let j = 0;
    while (j < n) {
      const e = this.entry(indices[j]!);
      // Extend the run while the next index is the next slot of the same shard.
      let k = j + 1;
      while (k < n) {
        const f = this.entry(indices[k]!);
        if (f.shard !== e.shard || f.slot !== e.slot + (k - j)) break;
        k++;
      }
      reads.push(this.readRun(e, records.subarray(j * rb, k * rb)));
      j = k;
    }
    indices.forEach((idx, b) => {
      const e = this.entries[idx]!;
      for (let c = 0; c < NUM_LABELS; c++) {
        labels[b * NUM_LABELS + c] = e.labels[c]!;
        labelMask[b * NUM_LABELS + c] = e.labelMask[c]!;
      }
    });
    await Promise.all(reads);
    const norm = opts.norm ?? this.preprocess;
    const x: RecordBatch = {
      kind: 'records',
      records,
      size: this.size,
      pixels: {
        mean: [...norm.mean],
        std: [...norm.std],
        paint: opts.paint ? paintTable(opts.paint) : this.defaultTable,
        original: variants.includes('original'),
        masked: variants.includes('masked'),
      },
    };
    return { x, n, labels, labelMask };
  }

  private entry(i: number): CachedEntry {
    const e = this.entries[i];
    if (!e) throw new RangeError(`cache entry ${i} out of range (0..${this.entries.length - 1})`);
    return e;
  }

  private async readRun(first: CachedEntry, into: Uint8Array): Promise<void> {
    const file = this.meta.shards[first.shard]!.file;
    let fh = this.handles.get(first.shard);
    if (!fh) {
      fh = open(join(this.dir, file), 'r');
      this.handles.set(first.shard, fh);
      // A failed open (EMFILE, a shard briefly missing) is not remembered: the next read retries.
      fh.catch(() => this.handles.delete(first.shard));
    }
    const { bytesRead } = await (await fh).read(into, 0, into.length, first.slot * this.meta.recordBytes);
    if (bytesRead !== into.length)
      throw new DataError('bad-cache', `short read (${bytesRead} of ${into.length} bytes)`, {
        file,
        row: first.slot,
      });
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    for (const fh of this.handles.values()) void fh.then((h) => h.close()).catch(() => {});
    this.handles.clear();
  }
}

/** A schema field without its default or optional: cache.json states every value it was built with. */
const stated = <T extends z.ZodType>(f: { unwrap(): T }) => f.unwrap();

/** The types of the cache.json fields the reader relies on (checkMeta then checks them against each other). */
const CacheMetaSchema = z.object({
  key: z.string(),
  decoder: z.number().int().min(1).optional(),
  size: z.number().int().min(1),
  recordBytes: z.number().int().min(1),
  preprocess: z.object({
    preset: stated(PreprocessOptionsSchema.shape.preset),
    size: stated(PreprocessOptionsSchema.shape.size),
    resize: stated(PreprocessOptionsSchema.shape.resize),
    kernel: stated(PreprocessOptionsSchema.shape.kernel),
    mean: stated(PreprocessOptionsSchema.shape.mean),
    std: stated(PreprocessOptionsSchema.shape.std),
    fastShrinkOnLoad: stated(PreprocessOptionsSchema.shape.fastShrinkOnLoad),
  }),
  contour: z.object({
    thickness: stated(ContourOptionsSchema.shape.thickness),
    source: stated(ContourOptionsSchema.shape.source),
  }),
  // a shard is a file in this folder, never a path elsewhere
  shards: z.array(
    z.object({
      file: z.string().regex(/^shard-\d+\.bin$/),
      count: z.number().int().min(0),
      bytes: z.number().int().min(0),
      sha256: z.string(),
    }),
  ),
  entriesSha256: z.string(),
  digest: z.string(),
  build: z.object({
    minDice: z.number(),
    labelPolicy: z.object({ uncertain: z.string(), blank: z.string() }).nullable(),
    requireMask: z.boolean(),
    chexmask: z.string().nullable(),
  }),
});

/**
 * cache.json against itself: its fields have the types the reader relies on, and the ones that
 * repeat each other agree. The shards and entries.jsonl are hashed, cache.json is not, so an edited
 * `size` (224 → 225: one bit) would otherwise cut wrong planes out of the right records.
 */
function checkMeta(dir: string, meta: CacheMeta): void {
  const r = firstIssue(CacheMetaSchema, meta);
  if (!r.ok) throw damaged(dir, 'cache.json', r.issue.message, r.field);
  const bad = (field: string, what: string) => damaged(dir, 'cache.json', what, field);
  if (meta.size !== meta.preprocess.size)
    throw bad('size', `${meta.size} ≠ preprocess.size ${meta.preprocess.size}`);
  if (meta.recordBytes !== 2 * meta.size * meta.size)
    throw bad('recordBytes', `${meta.recordBytes} ≠ 2 × size² (size ${meta.size})`);
  const key = settingsKey(meta.preprocess, meta.contour, meta.build);
  if (key !== meta.key)
    throw bad(
      'key',
      `${meta.key} is not the key of the recorded settings (preprocess, contour, build: ${key})`,
    );
  if (cacheDigest(meta.entriesSha256, meta.shards) !== meta.digest)
    throw bad('digest', `${meta.digest} is not the digest of entriesSha256 and shards`);
}

/**
 * A cache decoded by an older decoder revision is used as it is (rebuilding 243 k images for the few
 * that enlarge or carry alpha is the user's call), with a warning once per cache folder when its
 * entries hold an image the newer decoder can change (enlarged, or a PNG).
 */
function warnOlderDecoder(dir: string, meta: CacheMeta, entries: CachedEntry[]): void {
  const revision = decoderRevision(meta);
  if (revision >= DECODER_REVISION) return;
  // most caches (large JPEGs or DICOMs) decode as they did: said nothing about
  const reached = { enlarged: 0, unknown: 0, png: 0 };
  for (const e of entries) {
    const why = decoderChangeReaches(e, meta.preprocess);
    if (why) reached[why]++;
  }
  if (!reached.enlarged && !reached.unknown && !reached.png) return;
  const which = [
    reached.enlarged ? `${reached.enlarged} image(s) smaller than its size` : '',
    reached.png ? `${reached.png} PNG image(s), which may carry transparency` : '',
    reached.unknown ? `${reached.unknown} image(s) whose size the index did not record` : '',
  ].filter(Boolean);
  warnOnce(
    dir,
    'CXRMASK_CACHE_DECODER',
    `${dir}: built by an older cxrmask (decoder revision ${revision}, now ${DECODER_REVISION}), whose ${decoderChangesSince(revision)}. ` +
      `It holds ${which.join(' and ')}: those may differ from what predict and serve give now. \`cxrmask cache\` with the same settings marks the shards none of whose images changed as current (it reads their headers); delete the folder and build it again to re-decode the rest`,
  );
}

/** A batch whose images are cache records (see Cache.recordBatch). */
export interface RecordInputBatch {
  x: RecordBatch;
  n: number;
  labels: Float32Array;
  labelMask: Float32Array;
}

/** openCache's settings: each part is checked by its own schema when it is used. */
const OpenCacheSettingsSchema = z
  .object({
    preprocess: z.unknown().optional(),
    overlay: z.unknown().optional(),
    data: z.unknown().optional(),
  })
  .strict();

/**
 * Opens a cache: `dir` is either a keyed cache directory (holding cache.json) or the parent given to
 * buildCache; in the latter case the settings pick the key, or the only cache there is used.
 */
export function openCache(
  dir: string,
  settings: { preprocess?: PreprocessOptions; overlay?: ContourOptions; data?: CacheDataSettings } = {},
): Cache {
  parseOptions(OpenCacheSettingsSchema, settings, 'openCache');
  const given = Boolean(settings.preprocess || settings.overlay || settings.data);
  const key = () =>
    settingsKey(
      resolvePreprocess(settings.preprocess),
      parseOptions(ContourOptionsSchema, settings.overlay ?? {}, 'openCache overlay'),
      settings.data,
    );
  if (existsSync(join(dir, 'cache.json'))) {
    const cache = new Cache(dir);
    // A keyed folder given directly must still be the one these settings make: otherwise a run would
    // train on, say, U-Zeros labels while its config (and results.json) says U-Ignore.
    // Only the settings given are compared (a cache built with other contour settings is still the
    // one asked for when the caller names none).
    const diff = given ? settingsDiff(cache, settings) : [];
    if (diff.length) {
      cache.close();
      throw new DataError('cache-mismatch', `built with other settings than asked: ${diff.join('; ')}`, {
        file: dir,
      });
    }
    return cache;
  }
  if (!existsSync(dir)) throw new DataError('missing-file', 'cache directory does not exist', { file: dir });
  if (given) {
    const k = key();
    if (existsSync(join(dir, k, 'cache.json'))) return new Cache(join(dir, k));
    // caches built here with other settings: name how each differs (a label policy or size the caller
    // did not know it picked), rather than send them to build one they think they already built
    const others = keyedCaches(dir).map((d) => {
      const diff = recordedSettingsDiff(join(dir, d, 'cache.json'), settings);
      return `${d}: ${diff.length ? diff.join(', ') : 'other preprocessing or contour settings'}`;
    });
    if (others.length)
      throw new DataError(
        'no-matching-cache',
        `no cache for these settings (key ${k}); the caches here were built with other settings: ${others.join('; ')}`,
        { file: dir },
      );
    throw new DataError('missing-cache', `no cache for these settings (key ${k}); build it first`, {
      file: dir,
    });
  }
  const keys = keyedCaches(dir);
  if (keys.length === 1) return new Cache(join(dir, keys[0]));
  throw new DataError(
    'missing-cache',
    keys.length
      ? `several caches (${keys.join(', ')}); pass the settings or a keyed directory`
      : 'no cache.json found',
    { file: dir },
  );
}

/** The keyed caches (folders holding a cache.json) under a buildCache parent folder. */
function keyedCaches(dir: string): string[] {
  return readdirSync(dir).filter((d) => existsSync(join(dir, d, 'cache.json')));
}

/** settingsDiff of a keyed cache from its cache.json alone (no entries or shards read); [] if unreadable. */
function recordedSettingsDiff(metaPath: string, settings: Parameters<typeof settingsDiff>[1]): string[] {
  try {
    return settingsDiff(readCacheMeta(metaPath), settings);
  } catch {
    return [];
  }
}

/**
 * What a damaged cache was built from, when its cache.json and entries.jsonl are intact (the damage
 * is in its shards): its entries (shard and slot dropped) and recorded build. Rebuilding from them
 * repairs it with the same images, labels and splits, where indexing the dataset again could give
 * others (an index made with `--split patient`, another label table); buildCache keeps its shard
 * size. Null when either file is unreadable or entries.jsonl is not the one cache.json records.
 */
export function intactEntries(dir: string): { entries: IndexEntry[]; build: CacheBuildSettings } | null {
  try {
    const meta = readCacheMeta(join(dir, 'cache.json'));
    const path = join(dir, 'entries.jsonl');
    refuseNonFile(path);
    const text = readFileSync(path, 'utf8');
    if (sha256(text) !== meta.entriesSha256 || !meta.build) return null;
    const entries = text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const { shard: _s, slot: _t, ...e } = JSON.parse(l) as CachedEntry;
        return e;
      });
    return { entries, build: meta.build };
  } catch {
    return null;
  }
}

/** What differs between a cache's recorded build and the settings asked for, in words. */
function settingsDiff(
  cache: Pick<Cache, 'build' | 'size' | 'contour'>,
  settings: { preprocess?: PreprocessOptions; overlay?: ContourOptions; data?: CacheDataSettings },
): string[] {
  const out: string[] = [];
  const want = settings.data;
  const policy = (p: { uncertain: string; blank: string } | null | undefined) =>
    p ? `uncertain=${p.uncertain}, blank=${p.blank}` : 'none';
  if (want?.labelPolicy !== undefined && policy(cache.build?.labelPolicy) !== policy(want.labelPolicy))
    out.push(
      `label policy ${policy(cache.build?.labelPolicy)} (cache) vs ${policy(want.labelPolicy)} (asked)`,
    );
  if (want?.minDice !== undefined && cache.build && cache.build.minDice !== want.minDice)
    out.push(`minDice ${cache.build.minDice} (cache) vs ${want.minDice} (asked)`);
  if (settings.preprocess) {
    const size = resolvePreprocess(settings.preprocess).size;
    if (size !== cache.size) out.push(`image size ${cache.size} (cache) vs ${size} (asked)`);
  }
  for (const k of ['thickness', 'source'] as const) {
    const asked = settings.overlay?.[k];
    if (asked !== undefined && asked !== cache.contour[k])
      out.push(`contour ${k} ${cache.contour[k]} (cache) vs ${asked} (asked)`);
  }
  return out;
}
