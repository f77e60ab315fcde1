/**
 * Preprocessed on-disk cache. Each JPEG is decoded once into a size×size uint8 grayscale plane plus a
 * size×size contour bit map (1 right lung, 2 left lung, 4 heart); both are stored as fixed-size records
 * in shard files (memory-mappable raw bytes). Original and masked batches are made from the records
 * without touching the JPEG again. The cache directory is keyed by the settings that change the
 * records (resize geometry, kernel, shrink-on-load, contour thickness and source); mean/std and the
 * paint (α, colours) are applied when batches are made. Shards are written atomically (temp + rename)
 * with a manifest, so an interrupted build resumes at the first missing shard.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { type ChexmaskRow, joinChexmask } from '../data/chexmask.js';
import { DataError, ReasonCounter } from '../data/errors.js';
import { atomicWrite, type IndexEntry, indexEntryProblem, type Split } from '../data/mimic.js';
import { parseOptions } from '../data/options.js';
import { withAtomicPath } from '../experiment/io.js';
import { NUM_LABELS } from '../labels.js';
import {
  type ContourOptions,
  ContourOptionsSchema,
  checkRowSize,
  contourMap,
  contourPart,
  OverlayOptionsSchema,
  type PaintOptions,
  paintTable,
} from '../masks/overlay.js';
import type { RecordBatch } from '../model/records.js';
import { knownKeys } from '../model/validate.js';
import {
  cacheDigest,
  checkContent,
  recordStamps,
  type ShardInfo,
  sha256,
  sha256File,
  verifyShards,
} from './cache-verify.js';
import {
  type CacheDataSettings,
  decodePlane,
  type PreprocessOptions,
  planeToTensor,
  type ResolvedPreprocess,
  resolvePreprocess,
  settingsKey,
} from './preprocess.js';

/** 2: shards carry size + SHA-256, cache.json the entries digest and the join settings. */
export const CACHE_VERSION = 2;

export interface BuildCacheOptions {
  entries: IndexEntry[];
  /** MIMIC root the entry paths are relative to. */
  root: string;
  /** Joined CheXmask rows, or a CheXmask CSV path (joined here with minDice / keepRle as needed), or null. */
  chexmask: Map<string, ChexmaskRow> | string | null;
  /** Parent directory; the cache goes to out/<settings key>/. */
  out: string;
  preprocess?: PreprocessOptions;
  /** Contour geometry (thickness, source). Paint options are accepted and ignored here. */
  overlay?: ContourOptions & PaintOptions;
  minDice?: number;
  /** The index's uncertain/blank label handling (indexLabelPolicy); part of the cache key. */
  labelPolicy?: { uncertain: string; blank: string } | null;
  /** Skip entries with no usable CheXmask row (default true: original and masked sets stay identical). */
  requireMask?: boolean;
  shardSize?: number;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Every BuildCacheOptions key: a misspelled option is refused instead of silently ignored. */
const BUILD_CACHE_KEYS = [
  'entries',
  'root',
  'chexmask',
  'out',
  'preprocess',
  'overlay',
  'minDice',
  'labelPolicy',
  'requireMask',
  'shardSize',
  'concurrency',
  'onProgress',
] as const satisfies readonly (keyof BuildCacheOptions)[];

export interface CacheSummary {
  dir: string;
  key: string;
  planned: number;
  cached: number;
  perSplit: Record<Split, number>;
  skipped: { counts: Record<string, number>; examples: Record<string, string[]> };
  shardsBuilt: number;
  shardsReused: number;
  seconds: number;
  /** Images decoded per second in this run (reused shards excluded). */
  imagesPerSecond: number;
  chexmask?: unknown;
}

interface ShardManifest {
  version: number;
  key: string;
  /** Hash of the CheXmask rows used (grid size + landmarks, or RLE cells): new rows rebuild the shard. */
  rowsHash: string;
  planned: string[];
  records: string[];
  failures: { dicomId: string; reason: string; message: string }[];
  /** Size and SHA-256 of the .bin this manifest describes: a manifest is never paired with another build's shard. */
  bytes: number;
  sha256: string;
}

/** The settings that decided which images (and labels) the cache holds; recorded by runs. */
export interface CacheBuildSettings {
  minDice: number;
  labelPolicy: { uncertain: string; blank: string } | null;
  requireMask: boolean;
  /** CheXmask CSV path, or null when the caller passed joined rows. */
  chexmask: string | null;
}

interface CacheMeta {
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

const shardName = (k: number) => `shard-${String(k).padStart(5, '0')}`;

function rowsFingerprint(part: IndexEntry[], rows: Map<string, ChexmaskRow> | null, source: string): string {
  const h = createHash('sha1');
  for (const e of part) {
    const r = rows?.get(e.dicomId);
    h.update(`${e.dicomId}|`);
    if (!r) continue;
    h.update(`${r.height}x${r.width}|`);
    if (source === 'rle' && r.rle)
      h.update(`${r.rle.rightLung}|${r.rle.leftLung}|${r.rle.heart}|${r.emptyMasks.join()}`);
    else h.update(new Uint8Array(r.landmarks.buffer, r.landmarks.byteOffset, r.landmarks.byteLength));
  }
  return h.digest('hex').slice(0, 16);
}

export async function buildCache(options: BuildCacheOptions): Promise<CacheSummary> {
  const t0 = performance.now();
  knownKeys(options, BUILD_CACHE_KEYS, 'buildCache');
  const pp = resolvePreprocess(options.preprocess);
  const contour = contourPart(
    parseOptions(OverlayOptionsSchema, options.overlay ?? {}, 'buildCache overlay'),
  );
  const minDice = options.minDice ?? 0.7;
  const labelPolicy = options.labelPolicy ?? null;
  const key = settingsKey(pp, contour, { minDice, labelPolicy });
  const dir = join(options.out, key);
  await mkdir(dir, { recursive: true });
  const { shardSize, concurrency } = parseOptions(
    z.object({ shardSize: z.number().int().min(1), concurrency: z.number().int().min(1).max(256) }),
    { shardSize: options.shardSize ?? 1024, concurrency: options.concurrency ?? availableParallelism() },
    'buildCache',
  );
  const requireMask = options.requireMask ?? true;
  const S = pp.size;
  const plane = S * S;
  const recordBytes = 2 * plane;

  let rows: Map<string, ChexmaskRow> | null = null;
  let chexmaskSummary: unknown;
  if (typeof options.chexmask === 'string') {
    const j = await joinChexmask(
      options.chexmask,
      options.entries.map((e) => e.dicomId),
      { minDice, source: contour.source },
    );
    rows = j.rows;
    chexmaskSummary = j.summary;
  } else rows = options.chexmask;

  // entries name files under root: an entry whose path is not the one its ids give never reaches a read
  options.entries.forEach((e, i) => {
    const bad = indexEntryProblem(e);
    if (bad)
      throw new DataError('bad-index', bad.message, { file: 'index entries', row: i + 1, field: bad.field });
  });
  const skipped = new ReasonCounter();
  const planned: IndexEntry[] = [];
  for (const e of options.entries) {
    if (requireMask && !rows?.has(e.dicomId))
      skipped.add('no-chexmask', `${e.dicomId}: no usable CheXmask row (absent, refused or below minDice)`);
    else planned.push(e);
  }
  const byId = new Map(planned.map((e) => [e.dicomId, e]));
  const nShards = Math.ceil(planned.length / shardSize);
  const shards: ShardInfo[] = [];
  const cachedEntries: CachedEntry[] = [];
  let shardsBuilt = 0;
  let shardsReused = 0;
  let decoded = 0;
  let done = 0;
  let decodeSeconds = 0;

  for (let k = 0; k < nShards; k++) {
    const part = planned.slice(k * shardSize, (k + 1) * shardSize);
    const ids = part.map((e) => e.dicomId);
    const rowsHash = rowsFingerprint(part, rows, contour.source);
    const binPath = join(dir, `${shardName(k)}.bin`);
    const manPath = join(dir, `${shardName(k)}.json`);
    let manifest: ShardManifest | null = null;
    if (existsSync(manPath) && existsSync(binPath)) {
      try {
        const m = JSON.parse(readFileSync(manPath, 'utf8')) as ShardManifest;
        if (
          m.version === CACHE_VERSION &&
          m.key === key &&
          m.rowsHash === rowsHash &&
          m.planned.length === ids.length &&
          m.planned.every((id, i) => id === ids[i]) &&
          m.bytes === m.records.length * recordBytes &&
          statSync(binPath).size === m.bytes &&
          sha256File(binPath) === m.sha256 // a bit-flipped or foreign shard is rebuilt, never reused
        ) {
          manifest = m;
          shardsReused++;
          done += part.length;
          options.onProgress?.(done, planned.length);
        }
      } catch {
        manifest = null;
      }
    }
    if (!manifest) {
      const t1 = performance.now();
      const ok = new Uint8Array(part.length);
      const failures: ShardManifest['failures'] = [];
      let records: string[] = [];
      let bytes = 0;
      let digest = '';
      // Records go to the shard file as they are decoded (one record buffer per worker), so memory
      // stays at concurrency × record size whatever the shard size (a 1,024-image shard at 2048² is
      // 8.6 GB; it used to be held twice).
      await withAtomicPath(binPath, async (tmp) => {
        const fh = await open(tmp, 'w+');
        try {
          let next = 0;
          const worker = async () => {
            const rec = Buffer.alloc(recordBytes);
            while (next < part.length) {
              const i = next++;
              const e = part[i];
              const file = join(options.root, e.path);
              try {
                const { gray, geometry } = await decodePlane(file, pp);
                rec.set(gray, 0);
                const row = rows?.get(e.dicomId);
                if (row) {
                  checkRowSize(row, geometry.srcW, geometry.srcH, file);
                  rec.set(contourMap(row, geometry, contour), plane);
                } else rec.fill(0, plane);
                ok[i] = 1;
              } catch (err) {
                const reason = err instanceof DataError ? err.reason : 'error';
                const message = err instanceof Error ? err.message : String(err);
                failures.push({ dicomId: e.dicomId, reason, message });
              }
              // A write error (disk full) is the build's, not the image's: it ends the build.
              if (ok[i]) await fh.write(rec, 0, recordBytes, i * recordBytes);
              done++;
              options.onProgress?.(done, planned.length);
            }
          };
          await Promise.all(Array.from({ length: Math.min(concurrency, part.length) }, worker));
          // Compact in planned order (deterministic whatever the completion order) and hash what stays.
          const h = createHash('sha256');
          const rec = Buffer.alloc(recordBytes);
          records = [];
          for (let i = 0; i < part.length; i++) {
            if (!ok[i]) continue;
            const w = records.length;
            await fh.read(rec, 0, recordBytes, i * recordBytes);
            h.update(rec);
            if (w !== i) await fh.write(rec, 0, recordBytes, w * recordBytes);
            records.push(ids[i]);
          }
          bytes = records.length * recordBytes;
          await fh.truncate(bytes);
          digest = h.digest('hex');
        } finally {
          await fh.close();
        }
      });
      failures.sort((a, b) => ids.indexOf(a.dicomId) - ids.indexOf(b.dicomId));
      manifest = {
        version: CACHE_VERSION,
        key,
        rowsHash,
        planned: ids,
        records,
        failures,
        bytes,
        sha256: digest,
      };
      await atomicWrite(manPath, JSON.stringify(manifest));
      shardsBuilt++;
      decoded += part.length;
      decodeSeconds += (performance.now() - t1) / 1000;
    }
    for (const f of manifest.failures) skipped.add(f.reason, f.message);
    manifest.records.forEach((id, slot) => {
      cachedEntries.push({ ...(byId.get(id) as IndexEntry), shard: k, slot });
    });
    shards.push({
      file: `${shardName(k)}.bin`,
      count: manifest.records.length,
      bytes: manifest.bytes,
      sha256: manifest.sha256,
    });
  }
  const perSplit: Record<Split, number> = { train: 0, validate: 0, test: 0 };
  for (const e of cachedEntries) perSplit[e.split]++;
  const entriesText =
    cachedEntries.map((e) => JSON.stringify(e)).join('\n') + (cachedEntries.length ? '\n' : '');
  const entriesSha256 = sha256(entriesText);
  const meta: CacheMeta = {
    version: CACHE_VERSION,
    key,
    size: S,
    recordBytes,
    preprocess: pp,
    contour,
    shards,
    count: cachedEntries.length,
    skipped: skipped.toJSON(),
    entriesSha256,
    digest: cacheDigest(entriesSha256, shards),
    build: {
      minDice,
      labelPolicy,
      requireMask,
      chexmask: typeof options.chexmask === 'string' ? options.chexmask : null,
    },
  };
  await atomicWrite(join(dir, 'entries.jsonl'), entriesText);
  await atomicWrite(join(dir, 'cache.json'), `${JSON.stringify(meta, null, 2)}\n`);
  // every shard's content was hashed above (written or reused): opening this cache need not re-hash it
  recordStamps(dir, shards);
  return {
    dir,
    key,
    planned: planned.length,
    cached: cachedEntries.length,
    perSplit,
    skipped: skipped.toJSON(),
    shardsBuilt,
    shardsReused,
    seconds: (performance.now() - t0) / 1000,
    imagesPerSecond: decodeSeconds > 0 ? decoded / decodeSeconds : 0,
    chexmask: chexmaskSummary,
  };
}

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
    try {
      this.meta = JSON.parse(readFileSync(metaPath, 'utf8')) as CacheMeta;
    } catch (e) {
      throw new DataError('bad-cache', `unreadable cache description: ${(e as Error).message}`, {
        file: metaPath,
      });
    }
    if (this.meta.version !== CACHE_VERSION)
      throw new DataError(
        'bad-cache',
        `cache version ${this.meta.version} ≠ ${CACHE_VERSION} (written by another cxrmask); rebuild it with \`cxrmask cache\``,
        { file: metaPath },
      );
    this.key = this.meta.key;
    this.size = this.meta.size;
    this.preprocess = this.meta.preprocess;
    this.contour = this.meta.contour;
    this.skipped = this.meta.skipped;
    this.digest = this.meta.digest;
    this.build = this.meta.build;
    const entriesPath = join(dir, 'entries.jsonl');
    const text = readFileSync(entriesPath, 'utf8');
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

/** A batch whose images are cache records (see Cache.recordBatch). */
export interface RecordInputBatch {
  x: RecordBatch;
  n: number;
  labels: Float32Array;
  labelMask: Float32Array;
}

/**
 * Opens a cache: `dir` is either a keyed cache directory (holding cache.json) or the parent given to
 * buildCache; in the latter case the settings pick the key, or the only cache there is used.
 */
export function openCache(
  dir: string,
  settings: { preprocess?: PreprocessOptions; overlay?: ContourOptions; data?: CacheDataSettings } = {},
): Cache {
  knownKeys(settings, ['preprocess', 'overlay', 'data'], 'openCache');
  if (existsSync(join(dir, 'cache.json'))) return new Cache(dir);
  if (!existsSync(dir)) throw new DataError('missing-file', 'cache directory does not exist', { file: dir });
  if (settings.preprocess || settings.overlay || settings.data) {
    const key = settingsKey(
      resolvePreprocess(settings.preprocess),
      parseOptions(ContourOptionsSchema, settings.overlay ?? {}, 'openCache overlay'),
      settings.data,
    );
    if (existsSync(join(dir, key, 'cache.json'))) return new Cache(join(dir, key));
    throw new DataError('missing-cache', `no cache for these settings (key ${key}); build it first`, {
      file: dir,
    });
  }
  const keys = readdirSync(dir).filter((d) => existsSync(join(dir, d, 'cache.json')));
  if (keys.length === 1) return new Cache(join(dir, keys[0]));
  throw new DataError(
    'missing-cache',
    keys.length
      ? `several caches (${keys.join(', ')}); pass the settings or a keyed directory`
      : 'no cache.json found',
    { file: dir },
  );
}
