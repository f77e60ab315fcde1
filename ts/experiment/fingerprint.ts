/**
 * What data a run used, recorded in `<run>/data.json` when the run starts and in results.json: the
 * cache key, the cache's content digest (entries + shard checksums), a digest of every row's id,
 * split and labels as the run saw them, and the join settings (minDice, label policy, …). Finished
 * cells, features and predictions were computed on that data, so `--resume` and `eval` refuse a cache
 * whose fingerprint differs, naming what changed, instead of scoring stale predictions against new labels.
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { DataError } from '../common/errors.js';
import { writeJsonAtomic } from '../common/io.js';
import { type DataFingerprint, RUN_DATA_FILE, type RunData, type RunModel } from '../model/run-files.js';
import type { CacheLike } from './backend.js';

export function dataFingerprint(cache: CacheLike): DataFingerprint {
  const h = createHash('sha256');
  for (const e of cache.entries)
    h.update(`${e.dicomId}\t${e.split}\t${e.labels?.join(',') ?? '-'}\t${e.labelMask?.join(',') ?? '-'}\n`);
  return {
    cacheKey: cache.key ?? null,
    // absolute: read from other folders (a cell served elsewhere looks up its contour settings there)
    cacheDir: cache.dir ? resolve(cache.dir) : null,
    cacheDigest: cache.digest ?? null,
    entries: cache.entries.length,
    entriesDigest: h.digest('hex').slice(0, 32),
    join: (cache.build as Record<string, unknown> | undefined) ?? null,
  };
}

const short = (v: unknown) =>
  typeof v === 'string' && v.length > 12 ? `${v.slice(0, 12)}…` : JSON.stringify(v);

/** Human-readable differences between two fingerprints (empty when the data are the same). */
export function fingerprintChanges(before: DataFingerprint, now: DataFingerprint): string[] {
  const out: string[] = [];
  if (before.cacheKey !== now.cacheKey)
    out.push(`cache key ${short(before.cacheKey)} → ${short(now.cacheKey)} (other image/join settings)`);
  if (before.entries !== now.entries) out.push(`cached images ${before.entries} → ${now.entries}`);
  if (before.entriesDigest !== now.entriesDigest)
    out.push(
      `image ids, splits or labels differ (digest ${short(before.entriesDigest)} → ${short(now.entriesDigest)})`,
    );
  if (before.cacheDigest !== now.cacheDigest)
    out.push(`cache content differs (digest ${short(before.cacheDigest)} → ${short(now.cacheDigest)})`);
  const a = before.join ?? {};
  const b = now.join ?? {};
  // a setting caches record since this run started (rows) was not recorded then: not compared;
  // chexmask is where the rows were read from (a moved CSV, or a cache built before `cxrmask cache`
  // recorded it); the rows themselves are in the cache digest above
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
    if (
      k !== 'chexmask' &&
      !(before.join && !(k in before.join)) &&
      JSON.stringify(a[k]) !== JSON.stringify(b[k])
    )
      out.push(`join setting ${k}: ${JSON.stringify(a[k] ?? null)} → ${JSON.stringify(b[k] ?? null)}`);
  return out;
}

export function writeRunData(
  runDir: string,
  fingerprint: DataFingerprint,
  summaries: Record<string, unknown>,
  model: RunModel,
): RunData {
  const d: RunData = { fingerprint, recordedAt: new Date().toISOString(), summaries, model };
  writeJsonAtomic(join(runDir, RUN_DATA_FILE), d);
  return d;
}

/** Throws a DataError naming what changed when `now` is not the data `runDir` recorded. */
export function checkSameData(runDir: string, recorded: RunData, now: DataFingerprint, action: string): void {
  const changes = fingerprintChanges(recorded.fingerprint, now);
  if (!changes.length) return;
  throw new DataError(
    'data-changed',
    `cannot ${action}: the data differ from what this run used (recorded ${recorded.recordedAt}${recorded.fingerprint.cacheDir ? ` from ${recorded.fingerprint.cacheDir}` : ''}): ${changes.join('; ')}. Its finished cells were computed on the recorded data; restore that cache or start a new run`,
    { file: join(runDir, RUN_DATA_FILE) },
  );
}
