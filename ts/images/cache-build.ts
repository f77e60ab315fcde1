/**
 * Cache writer: decodes each planned JPEG once into a fixed-size record (gray plane + contour map),
 * writes shards atomically with a manifest (so an interrupted build resumes at the first missing
 * shard), then entries.jsonl and cache.json. The layout is described in cache.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { DataError, ReasonCounter } from '../common/errors.js';
import { withAtomicPath, writeFileAtomicAsync } from '../common/io.js';
import { or, parseOptions } from '../common/options.js';
import { type ChexmaskRow, joinChexmask, sizeRowFromImage } from '../data/chexmask.js';
import { type IndexEntry, indexEntryProblem, type Split } from '../data/mimic.js';
import {
  type ContourOptions,
  checkRowSize,
  contourPart,
  maskPlane,
  OverlayOptionsSchema,
  type PaintOptions,
} from '../masks/overlay.js';
import { CACHE_VERSION, type CachedEntry, type CacheMeta, type CacheSummary } from './cache-format.js';
import { cacheDigest, recordStamps, type ShardInfo, sha256, sha256File } from './cache-verify.js';
import { DATASET_FORMATS, type ImageLimits, resolveImageLimits } from './input.js';
import { decodePlane, type PreprocessOptions, resolvePreprocess, settingsKey } from './preprocess.js';

export interface BuildCacheOptions {
  entries: IndexEntry[];
  /** MIMIC root the entry paths are relative to. */
  root: string;
  /** Joined CheXmask rows, or a CheXmask CSV path (joined here with minDice / keepRle as needed), or null. */
  chexmask: Map<string, ChexmaskRow> | string | null;
  /** The id column of a CheXmask CSV path (the dataset adapter's); found from the header when unset. */
  chexmaskIdColumn?: string;
  /** Parent directory; the cache goes to out/<settings key>/. */
  out: string;
  preprocess?: PreprocessOptions;
  /** Contour geometry (thickness, source). Paint options are accepted and ignored here. */
  overlay?: ContourOptions & PaintOptions;
  minDice?: number;
  /** The index's uncertain/blank label handling (indexLabelPolicy); part of the cache key. */
  labelPolicy?: { uncertain: string; blank: string } | null;
  /** The index's row filters (indexRowFilters), recorded in cache.json so a run can compare its own. */
  rows?: CacheMeta['build']['rows'];
  /** Skip entries with no usable CheXmask row (default true: original and masked sets stay identical). */
  requireMask?: boolean;
  shardSize?: number;
  concurrency?: number;
  /**
   * Per-image caps (ts/images/input.ts; default 256 MiB, 50 MP, the dataset formats): an image over
   * them, or a path that is not a regular file, is skipped and counted like an undecodable one.
   */
  imageLimits?: ImageLimits;
  onProgress?: (done: number, total: number) => void;
}

/** Every BuildCacheOptions key: a misspelled option is refused instead of silently ignored. */
const BuildCacheOptionsSchema = z
  .object({
    entries: z.custom<IndexEntry[]>((v) => Array.isArray(v), 'must be an array of index entries'),
    root: z.string(),
    chexmask: z.custom<Map<string, ChexmaskRow> | string | null>(
      (v) => v === null || typeof v === 'string' || v instanceof Map,
      'must be a CheXmask CSV path, joined rows (a Map) or null',
    ),
    chexmaskIdColumn: z.string().optional(),
    out: z.string(),
    /** Resolved by resolvePreprocess, overlay and imageLimits by their own schemas. */
    preprocess: z.unknown().optional(),
    overlay: z.unknown().optional(),
    imageLimits: z.unknown().optional(),
    minDice: or(z.number(), 0.7),
    labelPolicy: or(z.custom<{ uncertain: string; blank: string } | null>(), null),
    rows: or(z.custom<CacheMeta['build']['rows']>(), null),
    requireMask: or(z.boolean(), true),
    shardSize: or(z.number().int().min(1), 1024),
    concurrency: or(z.number().int().min(1).max(256), availableParallelism),
    onProgress: z.custom<(done: number, total: number) => void>().optional(),
  })
  .strict();

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

/** What a build works with, options resolved: the image settings, the cache key, the shard plan. */
interface BuildSettings {
  entries: IndexEntry[];
  root: string;
  chexmask: Map<string, ChexmaskRow> | string | null;
  chexmaskIdColumn?: string;
  pp: ReturnType<typeof resolvePreprocess>;
  imageLimits: ReturnType<typeof resolveImageLimits>;
  contour: ReturnType<typeof contourPart>;
  minDice: number;
  labelPolicy: { uncertain: string; blank: string } | null;
  rows: CacheMeta['build']['rows'];
  requireMask: boolean;
  shardSize: number;
  concurrency: number;
  onProgress?: (done: number, total: number) => void;
  key: string;
  /** out/<key>: the cache folder. */
  dir: string;
  /** Bytes of one record: the S×S gray plane, then the S×S contour bit map. */
  recordBytes: number;
}

function resolveSettings(options: BuildCacheOptions): BuildSettings {
  const o = parseOptions(BuildCacheOptionsSchema, options, 'buildCache');
  const pp = resolvePreprocess(o.preprocess as PreprocessOptions | undefined);
  const imageLimits = resolveImageLimits({
    formats: [...DATASET_FORMATS],
    ...(o.imageLimits as ImageLimits | undefined),
  });
  const contour = contourPart(parseOptions(OverlayOptionsSchema, o.overlay ?? {}, 'buildCache overlay'));
  const key = settingsKey(pp, contour, { minDice: o.minDice, labelPolicy: o.labelPolicy });
  return {
    ...o,
    pp,
    imageLimits,
    contour,
    key,
    dir: join(options.out, key),
    recordBytes: 2 * pp.size * pp.size,
  };
}

/** The CheXmask rows of the entries: given, or joined here from a CSV path (with its join summary). */
async function chexmaskRows(
  b: BuildSettings,
): Promise<{ rows: Map<string, ChexmaskRow> | null; summary: unknown }> {
  if (typeof b.chexmask !== 'string') return { rows: b.chexmask, summary: undefined };
  const j = await joinChexmask(
    b.chexmask,
    b.entries.map((e) => e.dicomId),
    { minDice: b.minDice, source: b.contour.source, idColumn: b.chexmaskIdColumn },
  );
  return { rows: j.rows, summary: j.summary };
}

/** The entries to cache, in order: a malformed entry ends the build; one without a mask is skipped (requireMask). */
function planEntries(
  b: BuildSettings,
  rows: Map<string, ChexmaskRow> | null,
  skipped: ReasonCounter,
): IndexEntry[] {
  // entries name files under root: an entry whose path is not the one its ids give never reaches a read
  b.entries.forEach((e, i) => {
    const bad = indexEntryProblem(e);
    if (bad)
      throw new DataError('bad-index', bad.message, { file: 'index entries', row: i + 1, field: bad.field });
  });
  const planned: IndexEntry[] = [];
  for (const e of b.entries) {
    if (b.requireMask && !rows?.has(e.dicomId))
      skipped.add('no-chexmask', `${e.dicomId}: no usable CheXmask row (absent, refused or below minDice)`);
    else planned.push(e);
  }
  return planned;
}

/** One shard of the plan: its ids, its files and the fingerprint of its CheXmask rows. */
interface ShardPlan {
  part: IndexEntry[];
  ids: string[];
  rowsHash: string;
  binPath: string;
  manPath: string;
}

/** The shard's manifest when the files on disk are this very shard (a resumed build), else null. */
function reusableManifest(b: BuildSettings, s: ShardPlan): ShardManifest | null {
  if (!existsSync(s.manPath) || !existsSync(s.binPath)) return null;
  try {
    const m = JSON.parse(readFileSync(s.manPath, 'utf8')) as ShardManifest;
    const same =
      m.version === CACHE_VERSION &&
      m.key === b.key &&
      m.rowsHash === s.rowsHash &&
      m.planned.length === s.ids.length &&
      m.planned.every((id, i) => id === s.ids[i]) &&
      m.bytes === m.records.length * b.recordBytes &&
      statSync(s.binPath).size === m.bytes &&
      sha256File(s.binPath) === m.sha256; // a bit-flipped or foreign shard is rebuilt, never reused
    return same ? m : null;
  } catch {
    return null;
  }
}

/**
 * Decodes the shard's images into their slots of the open file, `concurrency` at a time. Returns which
 * slots hold a record; an image that cannot be decoded is a failure of its own, not of the build.
 */
async function decodeShard(
  b: BuildSettings,
  s: ShardPlan,
  rows: Map<string, ChexmaskRow> | null,
  fh: FileHandle,
  failures: ShardManifest['failures'],
  progress: () => void,
): Promise<Uint8Array> {
  const plane = b.pp.size * b.pp.size;
  const ok = new Uint8Array(s.part.length);
  let next = 0;
  const worker = async () => {
    const rec = Buffer.alloc(b.recordBytes);
    while (next < s.part.length) {
      const i = next++;
      const e = s.part[i];
      const file = join(b.root, e.path);
      try {
        const { gray, geometry } = await decodePlane(file, b.pp, b.imageLimits);
        rec.set(gray, 0);
        const stored = rows?.get(e.dicomId);
        const row = stored && sizeRowFromImage(stored, geometry.srcW, geometry.srcH, file);
        if (row) {
          checkRowSize(row, geometry.srcW, geometry.srcH, file);
          rec.set(maskPlane(row, geometry, b.contour), plane);
        } else rec.fill(0, plane);
        ok[i] = 1;
      } catch (err) {
        const reason = err instanceof DataError ? err.reason : 'error';
        const message = err instanceof Error ? err.message : String(err);
        failures.push({ dicomId: e.dicomId, reason, message });
      }
      // A write error (disk full) is the build's, not the image's: it ends the build.
      if (ok[i]) await fh.write(rec, 0, b.recordBytes, i * b.recordBytes);
      progress();
    }
  };
  await Promise.all(Array.from({ length: Math.min(b.concurrency, s.part.length) }, worker));
  return ok;
}

/**
 * Moves the decoded records to the front of the file in planned order (deterministic whatever the
 * completion order), truncates it, and hashes what stays.
 */
async function compactShard(
  b: BuildSettings,
  s: ShardPlan,
  fh: FileHandle,
  ok: Uint8Array,
): Promise<{ records: string[]; bytes: number; sha256: string }> {
  const h = createHash('sha256');
  const rec = Buffer.alloc(b.recordBytes);
  const records: string[] = [];
  for (let i = 0; i < s.part.length; i++) {
    if (!ok[i]) continue;
    const w = records.length;
    await fh.read(rec, 0, b.recordBytes, i * b.recordBytes);
    h.update(rec);
    if (w !== i) await fh.write(rec, 0, b.recordBytes, w * b.recordBytes);
    records.push(s.ids[i]);
  }
  const bytes = records.length * b.recordBytes;
  await fh.truncate(bytes);
  return { records, bytes, sha256: h.digest('hex') };
}

/** Decodes one shard into its .bin (atomically), then writes its manifest. */
async function writeShard(
  b: BuildSettings,
  s: ShardPlan,
  rows: Map<string, ChexmaskRow> | null,
  progress: () => void,
): Promise<ShardManifest> {
  const failures: ShardManifest['failures'] = [];
  let written = { records: [] as string[], bytes: 0, sha256: '' };
  // Records go to the shard file as they are decoded (one record buffer per worker), so memory
  // stays at concurrency × record size whatever the shard size (a 1,024-image shard at 2048² is
  // 8.6 GB; it used to be held twice).
  await withAtomicPath(s.binPath, async (tmp) => {
    const fh = await open(tmp, 'w+');
    try {
      const ok = await decodeShard(b, s, rows, fh, failures, progress);
      written = await compactShard(b, s, fh, ok);
    } finally {
      await fh.close();
    }
  });
  // Plan order, whatever order the concurrent decoders finished in (a map: a shard may hold thousands).
  const order = new Map(s.ids.map((id, k) => [id, k]));
  failures.sort((x, y) => (order.get(x.dicomId) ?? 0) - (order.get(y.dicomId) ?? 0));
  const manifest: ShardManifest = {
    version: CACHE_VERSION,
    key: b.key,
    rowsHash: s.rowsHash,
    planned: s.ids,
    records: written.records,
    failures,
    bytes: written.bytes,
    sha256: written.sha256,
  };
  await writeFileAtomicAsync(s.manPath, JSON.stringify(manifest));
  return manifest;
}

/** entries.jsonl and cache.json of the cached entries and their shards. */
async function writeCacheFiles(
  b: BuildSettings,
  shards: ShardInfo[],
  cachedEntries: CachedEntry[],
  skipped: ReasonCounter,
): Promise<void> {
  const entriesText =
    cachedEntries.map((e) => JSON.stringify(e)).join('\n') + (cachedEntries.length ? '\n' : '');
  const entriesSha256 = sha256(entriesText);
  const meta: CacheMeta = {
    version: CACHE_VERSION,
    key: b.key,
    size: b.pp.size,
    recordBytes: b.recordBytes,
    preprocess: b.pp,
    contour: b.contour,
    shards,
    count: cachedEntries.length,
    skipped: skipped.toJSON(),
    entriesSha256,
    digest: cacheDigest(entriesSha256, shards),
    build: {
      minDice: b.minDice,
      labelPolicy: b.labelPolicy,
      requireMask: b.requireMask,
      chexmask: typeof b.chexmask === 'string' ? b.chexmask : null,
      rows: b.rows,
    },
  };
  await writeFileAtomicAsync(join(b.dir, 'entries.jsonl'), entriesText);
  await writeFileAtomicAsync(join(b.dir, 'cache.json'), `${JSON.stringify(meta, null, 2)}\n`);
  // every shard's content was hashed above (written or reused): opening this cache need not re-hash it
  recordStamps(b.dir, shards);
}

/**
 * Builds (or resumes) the cache of `options.entries` in out/<settings key>/: plan, then shard by shard
 * reuse what a previous build left intact or decode it, then the entry list and cache.json.
 */
export async function buildCache(options: BuildCacheOptions): Promise<CacheSummary> {
  const t0 = performance.now();
  const b = resolveSettings(options);
  await mkdir(b.dir, { recursive: true });
  const { rows, summary: chexmaskSummary } = await chexmaskRows(b);
  const skipped = new ReasonCounter();
  const planned = planEntries(b, rows, skipped);
  const byId = new Map(planned.map((e) => [e.dicomId, e]));
  const shards: ShardInfo[] = [];
  const cachedEntries: CachedEntry[] = [];
  const count = { built: 0, reused: 0, decoded: 0, done: 0, decodeSeconds: 0 };
  const progress = () => {
    count.done++;
    b.onProgress?.(count.done, planned.length);
  };

  for (let k = 0; k < Math.ceil(planned.length / b.shardSize); k++) {
    const part = planned.slice(k * b.shardSize, (k + 1) * b.shardSize);
    const plan: ShardPlan = {
      part,
      ids: part.map((e) => e.dicomId),
      rowsHash: rowsFingerprint(part, rows, b.contour.source),
      binPath: join(b.dir, `${shardName(k)}.bin`),
      manPath: join(b.dir, `${shardName(k)}.json`),
    };
    let manifest = reusableManifest(b, plan);
    if (manifest) {
      count.reused++;
      count.done += part.length;
      b.onProgress?.(count.done, planned.length);
    } else {
      const t1 = performance.now();
      manifest = await writeShard(b, plan, rows, progress);
      count.built++;
      count.decoded += part.length;
      count.decodeSeconds += (performance.now() - t1) / 1000;
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
  await writeCacheFiles(b, shards, cachedEntries, skipped);
  const perSplit: Record<Split, number> = { train: 0, validate: 0, test: 0 };
  for (const e of cachedEntries) perSplit[e.split]++;
  return {
    dir: b.dir,
    key: b.key,
    planned: planned.length,
    cached: cachedEntries.length,
    perSplit,
    skipped: skipped.toJSON(),
    shardsBuilt: count.built,
    shardsReused: count.reused,
    seconds: (performance.now() - t0) / 1000,
    imagesPerSecond: count.decodeSeconds > 0 ? count.decoded / count.decodeSeconds : 0,
    chexmask: chexmaskSummary,
  };
}
