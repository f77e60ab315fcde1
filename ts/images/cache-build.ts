/**
 * Cache writer: decodes each planned JPEG once into a fixed-size record (gray plane + contour map),
 * writes shards atomically with a manifest (so an interrupted build resumes at the first missing
 * shard), then entries.jsonl and cache.json. The layout is described in cache.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { DataError, ReasonCounter } from '../common/errors.js';
import { withAtomicPath, writeFileAtomicAsync } from '../common/io.js';
import { type ChexmaskRow, joinChexmask, sizeRowFromImage } from '../data/chexmask.js';
import { type IndexEntry, indexEntryProblem, type Split } from '../data/mimic.js';
import { parseOptions } from '../data/options.js';
import {
  type ContourOptions,
  checkRowSize,
  contourPart,
  maskPlane,
  OverlayOptionsSchema,
  type PaintOptions,
} from '../masks/overlay.js';
import { knownKeys } from '../model/validate.js';
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
const BUILD_CACHE_KEYS = [
  'entries',
  'root',
  'chexmask',
  'chexmaskIdColumn',
  'out',
  'preprocess',
  'overlay',
  'minDice',
  'labelPolicy',
  'requireMask',
  'shardSize',
  'concurrency',
  'imageLimits',
  'onProgress',
] as const satisfies readonly (keyof BuildCacheOptions)[];

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

export async function buildCache(options: BuildCacheOptions): Promise<CacheSummary> {
  const t0 = performance.now();
  knownKeys(options, BUILD_CACHE_KEYS, 'buildCache');
  const pp = resolvePreprocess(options.preprocess);
  const imageLimits = resolveImageLimits({ formats: [...DATASET_FORMATS], ...options.imageLimits });
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
      { minDice, source: contour.source, idColumn: options.chexmaskIdColumn },
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
                const { gray, geometry } = await decodePlane(file, pp, imageLimits);
                rec.set(gray, 0);
                const stored = rows?.get(e.dicomId);
                const row = stored && sizeRowFromImage(stored, geometry.srcW, geometry.srcH, file);
                if (row) {
                  checkRowSize(row, geometry.srcW, geometry.srcH, file);
                  rec.set(maskPlane(row, geometry, contour), plane);
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
      // Plan order, whatever order the concurrent decoders finished in (a map: a shard may hold thousands).
      const order = new Map(ids.map((id, k) => [id, k]));
      failures.sort((a, b) => (order.get(a.dicomId) ?? 0) - (order.get(b.dicomId) ?? 0));
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
      await writeFileAtomicAsync(manPath, JSON.stringify(manifest));
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
  await writeFileAtomicAsync(join(dir, 'entries.jsonl'), entriesText);
  await writeFileAtomicAsync(join(dir, 'cache.json'), `${JSON.stringify(meta, null, 2)}\n`);
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
