/**
 * Cache writer: decodes each planned JPEG once into a fixed-size record (gray plane + contour map),
 * writes shards atomically with a manifest (so an interrupted build resumes at the first missing
 * shard), then entries.jsonl and cache.json. The layout is described in cache.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { type FileHandle, mkdir, open, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { DataError, InterruptedError, ReasonCounter } from '../common/errors.js';
import { refuseLinkedFolders, refuseNonFile } from '../common/files.js';
import { sha256, sha256File } from '../common/hash.js';
import type { StopSignal } from '../common/interrupt.js';
import { removeStaleTemps, withAtomicPath, writeFileAtomicAsync } from '../common/io.js';
import { or, parseOptions } from '../common/options.js';
import { type ChexmaskRow, DEFAULT_MIN_DICE, joinChexmask, sizeRowFromImage } from '../data/chexmask.js';
import { ChexmaskRecords } from '../data/chexmask-records.js';
import { type IndexEntry, indexEntryProblem, type Split } from '../data/mimic.js';
import {
  type ContourOptions,
  checkRowSize,
  contourPart,
  maskPlane,
  OverlayOptionsSchema,
  type PaintOptions,
} from '../masks/overlay.js';
import {
  CACHE_VERSION,
  type CachedEntry,
  type CacheMeta,
  type CacheSummary,
  DECODER_REVISION,
  decoderChangeReaches,
  decoderChangesSince,
  decoderRevision,
  readCacheMeta,
} from './cache-format.js';
import { cacheDigest, recordStamps, type ShardInfo } from './cache-verify.js';
import {
  DATASET_FORMATS,
  type ImageLimits,
  type ResolvedImageLimits,
  readImageHeader,
  resolveImageLimits,
} from './input.js';
import { decodePlane, type PreprocessOptions, resolvePreprocess, settingsKey } from './preprocess.js';

export interface BuildCacheOptions {
  entries: IndexEntry[];
  /** MIMIC root the entry paths are relative to. */
  root: string;
  /** Joined CheXmask rows, or a CheXmask CSV path (joined here with minDice / keepRle as needed), or null. */
  chexmask: Map<string, ChexmaskRow> | string | null;
  /** The id column of a CheXmask CSV path (the dataset adapter's); found from the header when unset. */
  chexmaskIdColumn?: string;
  /**
   * The CheXmask CSV that joined rows given as `chexmask` came from: recorded in cache.json
   * (`build.chexmask`), where `segmenter eval` reads CheXmask's Dice RCA. Not part of the cache key.
   */
  chexmaskCsv?: string;
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
  /**
   * Set `stop` (Ctrl-C) to end the build at its next image: the shard being written is dropped (its
   * temp file removed), the finished ones stay, and buildCache rejects with an InterruptedError.
   * Building the same cache again reuses the finished shards.
   */
  signal?: StopSignal;
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
    chexmaskCsv: z.string().optional(),
    out: z.string(),
    /** Resolved by resolvePreprocess, overlay and imageLimits by their own schemas. */
    preprocess: z.unknown().optional(),
    overlay: z.unknown().optional(),
    imageLimits: z.unknown().optional(),
    minDice: or(z.number(), DEFAULT_MIN_DICE),
    labelPolicy: or(z.custom<{ uncertain: string; blank: string } | null>(), null),
    rows: or(z.custom<CacheMeta['build']['rows']>(), null),
    requireMask: or(z.boolean(), true),
    shardSize: or(z.number().int().min(1), 1024),
    concurrency: or(z.number().int().min(1).max(256), availableParallelism),
    onProgress: z.custom<(done: number, total: number) => void>().optional(),
    signal: z
      .custom<StopSignal>((v) => typeof (v as StopSignal | null)?.stop === 'boolean', 'must be a StopSignal')
      .optional(),
  })
  .strict();

interface ShardManifest {
  version: number;
  /** The decoder revision its images were decoded with (DECODER_REVISION); absent before it was recorded. */
  decoder?: number;
  key: string;
  /** Hash of the CheXmask rows used (grid size + landmarks, or RLE cells): new rows rebuild the shard. */
  rowsHash: string;
  planned: string[];
  records: string[];
  failures: { dicomId: string; reason: string; message: string }[];
  /** The image limits it was decoded under: other limits may admit or refuse other images. */
  limits: ResolvedImageLimits;
  /** Size and SHA-256 of the .bin this manifest describes: a manifest is never paired with another build's shard. */
  bytes: number;
  sha256: string;
  /**
   * Per record (same order): the source file's version when it was decoded, so that an image
   * replaced under the same path (a corrected scan) rebuilds its shard. Absent in manifests from
   * before it was recorded; null where the file could not be stat'ed when it was recorded.
   */
  sources?: (SourceStamp | null)[];
}

/** What identifies a version of a source file without reading it: [size in bytes, mtimeMs]. */
type SourceStamp = [number, number];

/** Stats in flight when checking a shard's sources: they wait on the disk or file server, not the CPU. */
const STAT_CONCURRENCY = 16;

/** The source file's stamp, or null when it cannot be stat'ed (gone: the record keeps its pixels). */
async function sourceStamp(file: string): Promise<SourceStamp | null> {
  try {
    const st = await stat(file);
    return [st.size, st.mtimeMs];
  } catch {
    return null;
  }
}

const shardName = (k: number) => `shard-${String(k).padStart(5, '0')}`;

/**
 * The shard's CheXmask rows in one hash. Located rows (the rle source) have their RLE cells read
 * back one at a time, so the hash is the one of rows that hold them and memory stays one row's.
 */
async function rowsFingerprint(
  part: IndexEntry[],
  rows: Map<string, ChexmaskRow> | null,
  source: string,
  records: ChexmaskRecords | null,
): Promise<string> {
  const h = createHash('sha1');
  for (const e of part) {
    const stored = rows?.get(e.dicomId);
    h.update(`${e.dicomId}|`);
    if (!stored) continue;
    h.update(`${stored.height}x${stored.width}|`);
    const r = source === 'rle' && records ? await records.withRle(stored) : stored;
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
  chexmaskCsv?: string;
  pp: ReturnType<typeof resolvePreprocess>;
  imageLimits: ResolvedImageLimits;
  contour: ReturnType<typeof contourPart>;
  minDice: number;
  labelPolicy: { uncertain: string; blank: string } | null;
  rows: CacheMeta['build']['rows'];
  requireMask: boolean;
  shardSize: number;
  concurrency: number;
  onProgress?: (done: number, total: number) => void;
  signal?: StopSignal;
  key: string;
  /** out/<key>: the cache folder. */
  dir: string;
  /** Bytes of one record: the S×S gray plane, then the S×S contour bit map. */
  recordBytes: number;
  /** Where rows joined with locateRle (the rle source) get their RLE cells; set once rows are joined. */
  records: ChexmaskRecords | null;
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
    records: null,
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
    {
      minDice: b.minDice,
      source: b.contour.source,
      locateRle: b.contour.source === 'rle',
      idColumn: b.chexmaskIdColumn,
    },
  );
  return { rows: j.rows, summary: j.summary };
}

/**
 * The reader of located rows' RLE cells (joinChexmask's `locateRle`), when the rle source draws from
 * such rows: the CSV they came from is `chexmask` when a path, else `chexmaskCsv`.
 */
async function locatedRecords(
  b: BuildSettings,
  rows: Map<string, ChexmaskRow> | null,
): Promise<ChexmaskRecords | null> {
  if (b.contour.source !== 'rle' || !rows) return null;
  let located = false;
  for (const r of rows.values())
    if (r.record && !r.rle) {
      located = true;
      break;
    }
  if (!located) return null;
  const csv = typeof b.chexmask === 'string' ? b.chexmask : b.chexmaskCsv;
  if (csv === undefined)
    throw new TypeError(
      'buildCache: CheXmask rows joined with locateRle need chexmaskCsv, the CSV they were joined from',
    );
  return ChexmaskRecords.open(csv, b.chexmaskIdColumn);
}

/** The entries to cache, in order: a malformed entry ends the build; one without a mask is skipped (requireMask). */
function planEntries(
  b: BuildSettings,
  rows: Map<string, ChexmaskRow> | null,
  skipped: ReasonCounter,
): IndexEntry[] {
  // entries name files under root: an entry whose path is not the one its ids give never reaches a read
  const firstRow = new Map<string, number>();
  b.entries.forEach((e, i) => {
    const bad = indexEntryProblem(e);
    if (bad)
      throw new DataError('bad-index', bad.message, { file: 'index entries', row: i + 1, field: bad.field });
    // An image is cached once, with one split and one set of labels: a repeat (two index files
    // concatenated, a split edited by hand) would be decoded twice, and either row could be the right one.
    const seen = firstRow.get(e.dicomId);
    if (seen !== undefined) {
      const was = b.entries[seen - 1]!;
      throw new DataError(
        'bad-index',
        `repeats row ${seen} (split "${was.split}" there, "${e.split}" here); an image can be cached once: remove one of the rows`,
        { file: 'index entries', row: i + 1, id: e.dicomId, field: 'dicomId' },
      );
    }
    firstRow.set(e.dicomId, i + 1);
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

/**
 * The planned entries a manifest's records hold, in slot order: each is the plan's own entry (not
 * one looked up by id). Null when the records are not a subsequence of the plan.
 */
function recordEntries(part: IndexEntry[], records: string[]): IndexEntry[] | null {
  const out: IndexEntry[] = [];
  let j = 0;
  for (const id of records) {
    while (j < part.length && part[j]!.dicomId !== id) j++;
    if (j === part.length) return null;
    out.push(part[j++]!);
  }
  return out;
}

/** Formats in any order are the same limits. */
const limitsText = (l: ResolvedImageLimits | undefined) =>
  l ? JSON.stringify([l.maxFileBytes, l.maxPixels, [...l.formats].sort()]) : 'none recorded';

/** Why an earlier build's shard is rebuilt (CacheSummary.rebuilt keys; rebuildNotes says them in words). */
type StaleReason = 'image-limits' | 'recovered-images' | 'changed-images' | 'plan' | 'damaged';

/**
 * A shard manifest as JSON. A FIFO in its place would block the read forever (a cache folder may come
 * from someone else): refused.
 */
function readManifest(path: string): ShardManifest {
  refuseNonFile(path);
  return JSON.parse(readFileSync(path, 'utf8')) as ShardManifest;
}

/**
 * The shard's manifest when the files on disk are this very shard (a resumed build); else why not,
 * or nothing when no earlier build left this shard.
 */
function reusableManifest(
  b: BuildSettings,
  s: ShardPlan,
): { manifest: ShardManifest } | { stale: StaleReason | null } {
  if (!existsSync(s.manPath) || !existsSync(s.binPath)) return { stale: null };
  // refused here, outside the try: a FIFO is not a damaged manifest to rebuild over
  refuseNonFile(s.manPath);
  try {
    const m = readManifest(s.manPath);
    const samePlan =
      m.version === CACHE_VERSION &&
      m.key === b.key &&
      m.rowsHash === s.rowsHash &&
      m.planned.length === s.ids.length &&
      m.planned.every((id, i) => id === s.ids[i]);
    if (!samePlan) return { stale: 'plan' };
    // raised limits may admit an image refused before, lowered ones refuse one cached before;
    // a manifest from before limits were recorded does not say which it was built under
    if (limitsText(m.limits) !== limitsText(b.imageLimits)) return { stale: 'image-limits' };
    const intact =
      recordEntries(s.part, m.records) !== null &&
      m.bytes === m.records.length * b.recordBytes &&
      statSync(s.binPath).size === m.bytes &&
      sha256File(s.binPath) === m.sha256; // a bit-flipped or foreign shard is rebuilt, never reused
    return intact ? { manifest: m } : { stale: 'damaged' };
  } catch {
    return { stale: 'damaged' };
  }
}

/** Runs job(i, worker) for i in 0..n-1, `concurrency` at a time; once `stop()` is true no new job starts. */
async function runPool(
  n: number,
  concurrency: number,
  job: (i: number, worker: number) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const worker = async (w: number) => {
    while (next < n && !stop()) await job(next++, w);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, (_, w) => worker(w)));
}

type Failure = ShardManifest['failures'][number];

/**
 * Decodes entry e into `rec` (the gray plane, then the contour map), and says which version of the
 * file it read (stat'ed before the read: a file changed during it differs next time). An image that
 * cannot be used (unreadable, refused, corrupt, its CheXmask row the wrong size) comes back as its
 * failure.
 */
async function decodeRecord(
  b: BuildSettings,
  e: IndexEntry,
  rows: Map<string, ChexmaskRow> | null,
  rec: Buffer,
): Promise<{ failure: Failure } | { source: SourceStamp | null }> {
  const plane = b.pp.size * b.pp.size;
  const file = join(b.root, e.path);
  try {
    const source = await sourceStamp(file);
    const { gray, geometry } = await decodePlane(file, b.pp, b.imageLimits);
    rec.set(gray, 0);
    const stored = rows?.get(e.dicomId);
    let row = stored && sizeRowFromImage(stored, geometry.srcW, geometry.srcH, file);
    if (row) {
      checkRowSize(row, geometry.srcW, geometry.srcH, file);
      // a located row's RLE cells are read for this image only (none held for the whole build)
      if (b.records) row = await b.records.withRle(row);
      rec.set(maskPlane(row, geometry, b.contour), plane);
    } else rec.fill(0, plane);
    return { source };
  } catch (err) {
    const reason = err instanceof DataError ? err.reason : 'error';
    const message = err instanceof Error ? err.message : String(err);
    return { failure: { dicomId: e.dicomId, reason, message } };
  }
}

/**
 * Which of a reusable shard's records were decoded from a file that has changed since (another size
 * or modification time: an image replaced under the same path). A stat per record, no read (243k
 * stats take ~2 s on a local disk). A file gone since is not a change (the record keeps the pixels it had); a
 * manifest from before sources were recorded gives null (unknown).
 */
async function changedSources(b: BuildSettings, s: ShardPlan, m: ShardManifest): Promise<number | null> {
  const stamps = m.sources;
  if (!stamps || stamps.length !== m.records.length) return null;
  const held = recordEntries(s.part, m.records)!; // reusableManifest checked the records
  let changed = 0;
  await runPool(held.length, Math.max(b.concurrency, STAT_CONCURRENCY), async (i) => {
    const was = stamps[i];
    const now = await sourceStamp(join(b.root, held[i]!.path));
    if (was && now && (now[0] !== was[0] || now[1] !== was[1])) changed++;
  });
  return changed;
}

/**
 * Whether a shard an older decoder revision wrote holds what this one would: none of its images is
 * enlarged or is a PNG with transparency, read from each file's header (the index's sizes may not be
 * the files': a downsampled copy of a dataset).
 */
async function decodesAsBefore(b: BuildSettings, s: ShardPlan, m: ShardManifest): Promise<boolean> {
  const held = recordEntries(s.part, m.records)!; // reusableManifest checked the records
  let same = true;
  await runPool(held.length, Math.max(b.concurrency, STAT_CONCURRENCY), async (i) => {
    if (!same) return;
    try {
      const head = await readImageHeader(join(b.root, held[i]!.path));
      const size = { path: '', width: head.width, height: head.height };
      if (head.hasAlpha || decoderChangeReaches(size, b.pp) !== null) same = false;
    } catch {
      same = false; // unreadable now: it cannot be shown unchanged
    }
  });
  return same;
}

/** The current stamps of a shard's records (a manifest from before they were recorded). */
async function currentSources(
  b: BuildSettings,
  s: ShardPlan,
  m: ShardManifest,
): Promise<(SourceStamp | null)[]> {
  const held = recordEntries(s.part, m.records)!;
  const out: (SourceStamp | null)[] = new Array(held.length).fill(null);
  await runPool(held.length, Math.max(b.concurrency, STAT_CONCURRENCY), async (i) => {
    out[i] = await sourceStamp(join(b.root, held[i]!.path));
  });
  return out;
}

/**
 * Tries again the images a reusable shard could not decode before (a file since repaired, replaced
 * or finished downloading; an NFS hiccup). Cheap: only those images are read. Stops at the first
 * that decodes, since the shard is then rebuilt (which tries them all); else returns their failures now.
 */
async function retryFailures(
  b: BuildSettings,
  s: ShardPlan,
  rows: Map<string, ChexmaskRow> | null,
  m: ShardManifest,
): Promise<{ decodes: boolean; failures: Failure[] }> {
  const byId = new Map(s.part.map((e) => [e.dicomId, e]));
  const failed = m.failures.map((f) => byId.get(f.dicomId)).filter((e): e is IndexEntry => e !== undefined);
  const recs = Array.from({ length: Math.min(b.concurrency, failed.length) }, () =>
    Buffer.alloc(b.recordBytes),
  );
  const failures: (Failure | null)[] = [];
  let decodes = failed.length !== m.failures.length; // a failure not in the plan: rebuild rather than guess
  await runPool(
    failed.length,
    b.concurrency,
    async (i, w) => {
      const r = await decodeRecord(b, failed[i]!, rows, recs[w]!);
      failures[i] = 'failure' in r ? r.failure : null;
      if (!failures[i]) decodes = true;
    },
    () => decodes,
  );
  return { decodes, failures: decodes ? [] : (failures as Failure[]) };
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
  sources: (SourceStamp | null)[],
  progress: () => void,
): Promise<Uint8Array> {
  const ok = new Uint8Array(s.part.length);
  // one record buffer per worker
  const recs = Array.from({ length: Math.min(b.concurrency, s.part.length) }, () =>
    Buffer.alloc(b.recordBytes),
  );
  await runPool(
    s.part.length,
    b.concurrency,
    async (i, w) => {
      const rec = recs[w]!;
      const r = await decodeRecord(b, s.part[i]!, rows, rec);
      if ('failure' in r) failures.push(r.failure);
      // A write error (disk full) is the build's, not the image's: it ends the build.
      else {
        ok[i] = 1;
        sources[i] = r.source;
        await fh.write(rec, 0, b.recordBytes, i * b.recordBytes);
      }
      progress();
    },
    () => b.signal?.stop === true,
  );
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
  // by plan slot; the records' own are picked out in record order below
  const slotSources: (SourceStamp | null)[] = new Array(s.part.length).fill(null);
  let written = { records: [] as string[], bytes: 0, sha256: '' };
  // Records go to the shard file as they are decoded (one record buffer per worker), so memory
  // stays at concurrency × record size whatever the shard size (a 1,024-image shard at 2048² is
  // 8.6 GB; it used to be held twice).
  await withAtomicPath(s.binPath, async (tmp) => {
    const fh = await open(tmp, 'w+');
    try {
      const ok = await decodeShard(b, s, rows, fh, failures, slotSources, progress);
      // stopped part-way: the shard is unfinished; throwing here removes its temp file
      if (b.signal?.stop) throw new InterruptedError(`stopped while writing ${s.binPath}`);
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
    decoder: DECODER_REVISION,
    key: b.key,
    rowsHash: s.rowsHash,
    planned: s.ids,
    records: written.records,
    failures,
    limits: b.imageLimits,
    bytes: written.bytes,
    sha256: written.sha256,
    sources: written.records.map((id) => slotSources[order.get(id)!]!),
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
  decoder: number,
): Promise<void> {
  const entriesText =
    cachedEntries.map((e) => JSON.stringify(e)).join('\n') + (cachedEntries.length ? '\n' : '');
  const entriesSha256 = sha256(entriesText);
  const meta: CacheMeta = {
    version: CACHE_VERSION,
    decoder,
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
      // absolute: segmenter eval reads it from another working folder
      chexmask:
        typeof b.chexmask === 'string' ? resolve(b.chexmask) : b.chexmaskCsv ? resolve(b.chexmaskCsv) : null,
      rows: b.rows,
    },
  };
  await writeFileAtomicAsync(join(b.dir, 'entries.jsonl'), entriesText);
  await writeFileAtomicAsync(join(b.dir, 'cache.json'), `${JSON.stringify(meta, null, 2)}\n`);
  // every shard's content was hashed above (written or reused): opening this cache need not re-hash it
  recordStamps(b.dir, shards);
}

/** Shard counts a build reports (buildCache's summary). */
interface ShardCounts {
  built: number;
  reused: number;
  decoded: number;
  done: number;
  decodeSeconds: number;
  retried: number;
  recovered: number;
  changed: number;
  unstamped: number;
  /** Reused shards decoded by an older decoder revision. */
  olderDecoder: number;
  /** The oldest decoder revision among the shards (cache.json's `decoder`). */
  decoder: number;
}

/**
 * One shard's manifest: the one a previous build left when it is intact and none of its images'
 * files changed since (its failed images tried again first: if one now decodes the shard is
 * rebuilt), else the shard written anew.
 */
async function shardManifest(
  b: BuildSettings,
  plan: ShardPlan,
  rows: Map<string, ChexmaskRow> | null,
  count: ShardCounts,
  rebuilt: ReasonCounter,
  progress: () => void,
  total: number,
): Promise<ShardManifest> {
  const found = reusableManifest(b, plan);
  let manifest = 'manifest' in found ? found.manifest : null;
  let stale = 'stale' in found ? found.stale : null;
  let failedBefore: Set<string> | null = null;
  let unstamped = false;
  if (manifest) {
    const changed = await changedSources(b, plan, manifest);
    unstamped = changed === null;
    if (changed) {
      count.changed += changed;
      manifest = null;
      stale = 'changed-images';
    }
  }
  if (manifest?.failures.length) {
    count.retried += manifest.failures.length;
    const retry = await retryFailures(b, plan, rows, manifest);
    if (retry.decodes) {
      failedBefore = new Set(manifest.failures.map((f) => f.dicomId));
      manifest = null;
      stale = 'recovered-images';
    } else if (JSON.stringify(retry.failures) !== JSON.stringify(manifest.failures)) {
      // still failing, perhaps for another reason now (a missing file put back but truncated): say that
      manifest = { ...manifest, failures: retry.failures };
      await writeFileAtomicAsync(plan.manPath, JSON.stringify(manifest));
    }
  }
  if (manifest) {
    if (unstamped) {
      // built before sources were recorded: kept (a rebuild of every shard would take hours), and
      // stamped now, so that an image replaced from now on is seen
      count.unstamped++;
      manifest = { ...manifest, sources: await currentSources(b, plan, manifest) };
      await writeFileAtomicAsync(plan.manPath, JSON.stringify(manifest));
    }
    // kept, not re-decoded: most images decode as they did (warned about in rebuildNotes and on open);
    // a shard none of whose images the newer decoder changes is marked current
    if (decoderRevision(manifest) < DECODER_REVISION && (await decodesAsBefore(b, plan, manifest))) {
      manifest = { ...manifest, decoder: DECODER_REVISION };
      await writeFileAtomicAsync(plan.manPath, JSON.stringify(manifest));
    }
    if (decoderRevision(manifest) < DECODER_REVISION) count.olderDecoder++;
    count.decoder = Math.min(count.decoder, decoderRevision(manifest));
    count.reused++;
    count.done += plan.part.length;
    b.onProgress?.(count.done, total);
  } else {
    if (stale) rebuilt.add(stale);
    const t1 = performance.now();
    manifest = await writeShard(b, plan, rows, progress);
    count.built++;
    count.decoded += plan.part.length;
    count.decodeSeconds += (performance.now() - t1) / 1000;
    const was = failedBefore;
    if (was) count.recovered += manifest.records.filter((id) => was.has(id)).length;
  }
  return manifest;
}

function noShardCounts(): ShardCounts {
  return {
    built: 0,
    reused: 0,
    decoded: 0,
    done: 0,
    decodeSeconds: 0,
    retried: 0,
    recovered: 0,
    changed: 0,
    unstamped: 0,
    olderDecoder: 0,
    decoder: DECODER_REVISION,
  };
}

/**
 * Builds (or resumes) the cache of `options.entries` in out/<settings key>/: plan, then shard by shard
 * reuse what a previous build left intact or decode it, then the entry list and cache.json. Temp files
 * a killed build left in that folder are removed first.
 * @throws {InterruptedError} (rejects) `options.signal` was stopped: the finished shards are kept (the
 *   message says how many) and the same build run again continues from them.
 */
export async function buildCache(options: BuildCacheOptions): Promise<CacheSummary> {
  const t0 = performance.now();
  const b = resolveSettings(options);
  // out/<key> is ours to write below; `out` itself may be a link to a bigger disk
  refuseLinkedFolders(options.out, 'cache folder', b.dir);
  await mkdir(b.dir, { recursive: true });
  // shard temps of an earlier build that was killed (its pid gone): a rebuild writes them anew
  removeStaleTemps(b.dir);
  const asked = b.shardSize;
  b.shardSize = earlierShardSize(b.dir, asked);
  const { rows, summary: chexmaskSummary } = await chexmaskRows(b);
  b.records = await locatedRecords(b, rows);
  try {
    const summary = await buildShards(b, rows, chexmaskSummary, t0);
    return b.shardSize === asked ? summary : { ...summary, keptShardSize: { kept: b.shardSize, asked } };
  } finally {
    await b.records?.close();
  }
}

/**
 * The shard size for a build into `dir`: that of the finished cache already there (the ids its first
 * shard was planned with: every shard but the last is full; any size from that count up when it has
 * one shard), else `asked`. Records are not the measure: a shard's failed images hold none. The
 * folder is keyed by the images' settings, not the shard size: rebuilding it with another would
 * re-lay every shard, change the digest runs record, and leave every run on it unable to resume,
 * for the same images, labels and splits.
 */
function earlierShardSize(dir: string, asked: number): number {
  if (!existsSync(join(dir, 'cache.json'))) return asked;
  let shards: number;
  try {
    shards = readCacheMeta(join(dir, 'cache.json')).shards?.length ?? 0;
  } catch {
    return asked; // damaged: rebuilt with the size asked
  }
  // the first full shard whose manifest reads (shard 0's may be the damaged one)
  for (let k = 0; k < Math.max(1, shards - 1); k++) {
    let n = 0;
    try {
      n = readManifest(join(dir, `${shardName(k)}.json`)).planned?.length ?? 0;
    } catch {
      continue;
    }
    if (n === 0) continue;
    return shards === 1 && asked >= n ? asked : n;
  }
  return asked;
}

/** buildCache once the rows are joined: plan, shards, entry list and cache.json, and the summary. */
async function buildShards(
  b: BuildSettings,
  rows: Map<string, ChexmaskRow> | null,
  chexmaskSummary: unknown,
  t0: number,
): Promise<CacheSummary> {
  const skipped = new ReasonCounter();
  const planned = planEntries(b, rows, skipped);
  const shards: ShardInfo[] = [];
  const cachedEntries: CachedEntry[] = [];
  const count = noShardCounts();
  const rebuilt = new ReasonCounter();
  const progress = () => {
    count.done++;
    b.onProgress?.(count.done, planned.length);
  };

  const shardCount = Math.ceil(planned.length / b.shardSize);
  const stopped = () =>
    new InterruptedError(
      `stopped building the image cache ${b.dir} with ${shards.length} of ${shardCount} shard(s) finished; they are kept, and the same build run again continues from them`,
    );
  for (let k = 0; k < shardCount; k++) {
    if (b.signal?.stop) throw stopped();
    const part = planned.slice(k * b.shardSize, (k + 1) * b.shardSize);
    const plan: ShardPlan = {
      part,
      ids: part.map((e) => e.dicomId),
      rowsHash: await rowsFingerprint(part, rows, b.contour.source, b.records),
      binPath: join(b.dir, `${shardName(k)}.bin`),
      manPath: join(b.dir, `${shardName(k)}.json`),
    };
    let manifest: ShardManifest;
    try {
      manifest = await shardManifest(b, plan, rows, count, rebuilt, progress, planned.length);
    } catch (e) {
      throw e instanceof InterruptedError ? stopped() : e;
    }
    for (const f of manifest.failures) skipped.add(f.reason, f.message);
    const held = recordEntries(part, manifest.records);
    if (!held) throw new Error(`${plan.manPath}: records are not in plan order`); // checked on reuse; written in order
    held.forEach((e, slot) => {
      cachedEntries.push({ ...e, shard: k, slot });
    });
    shards.push({
      file: `${shardName(k)}.bin`,
      count: manifest.records.length,
      bytes: manifest.bytes,
      sha256: manifest.sha256,
    });
  }
  await writeCacheFiles(b, shards, cachedEntries, skipped, count.decoder);
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
    rebuilt: { ...rebuilt.counts },
    retried: count.retried,
    recovered: count.recovered,
    changed: count.changed,
    unstamped: count.unstamped,
    olderDecoder: count.olderDecoder,
    decoder: count.decoder,
    seconds: (performance.now() - t0) / 1000,
    imagesPerSecond: count.decodeSeconds > 0 ? count.decoded / count.decodeSeconds : 0,
    chexmask: chexmaskSummary,
  };
}

const STALE_WORDS: Record<StaleReason, string> = {
  'image-limits':
    'built under other image limits (--max-pixels, --max-image-size) or before limits were recorded',
  'recovered-images': 'with images that had failed and now decode',
  'changed-images': 'with image files changed since they were cached (size or modification time)',
  plan: 'planned for other images, CheXmask rows or settings',
  damaged: 'whose file is not as its manifest says (damaged)',
};

/**
 * What a build did with the shards an earlier build left in its folder, in words, one line each (none
 * for a first build): which were rebuilt and why, and how the images that had failed fared this time.
 */
export function rebuildNotes(s: CacheSummary): string[] {
  const out: string[] = [];
  const stale = Object.entries(s.rebuilt);
  const n = stale.reduce((t, [, c]) => t + c, 0);
  const why = stale.map(([r, c]) => `${c} ${STALE_WORDS[r as StaleReason] ?? r}`);
  if (n) out.push(`rebuilt ${n} shard(s) an earlier build left: ${why.join('; ')}`);
  if (s.retried)
    out.push(
      `retried ${s.retried} image(s) that had failed in an earlier build: ${s.recovered} now cached` +
        (s.retried > s.recovered ? `, ${s.retried - s.recovered} still failing (counted in skipped)` : ''),
    );
  if (s.changed)
    out.push(`re-decoded ${s.changed} image(s) whose file changed since it was cached (and their shards)`);
  if (s.unstamped)
    out.push(
      `warning: ${s.unstamped} shard(s) from an earlier version recorded no source file sizes and times: ` +
        'kept as they are, with the files as they are now recorded; an image replaced before this run is ' +
        'not seen (delete the cache folder to re-decode everything)',
    );
  if (s.keptShardSize)
    out.push(
      `kept the shard size of the cache already in ${s.dir} (${s.keptShardSize.kept}; asked ${s.keptShardSize.asked}): ` +
        'the runs recorded on it stay resumable; build into another --out (or delete the folder) for another layout',
    );
  if (s.olderDecoder)
    out.push(
      `warning: ${s.olderDecoder} shard(s) were decoded by an older cxrmask and kept: ${decoderChangesSince(s.decoder)}; ` +
        `delete ${s.dir} to re-decode them if the images are small or transparent`,
    );
  return out;
}
