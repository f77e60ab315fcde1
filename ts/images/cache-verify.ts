/**
 * Integrity of the image cache's files. Each shard's size and SHA-256 are recorded in its manifest and
 * in cache.json when it is written; entries.jsonl's SHA-256 in cache.json.
 *
 * When a cache is opened every shard's size is checked (a truncated shard is caught by one stat).
 * Content: hashing all of a full MIMIC cache (~240 shards, ~24 GB) would cost ~17 s of CPU at
 * ~1.4 GB/s plus reading it from disk, on every open. Instead each shard's verified (sha256, size,
 * mtime, ctime, inode) is remembered in `shards.verified.json`; a shard whose stamp still matches is
 * not re-hashed, and any shard written, copied or replaced since (mtime/ctime/inode differ) is hashed
 * in full before the cache is used. Like git's "racy" index entries, a stamp taken within 2 s of the
 * shard's last change is not trusted (coarse file-system clocks), so such a shard is hashed on the next
 * open. A rebuild hashes every shard it considers reusing, always (its cost is small next to decoding).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../common/errors.js';
import { sha256, sha256File } from '../common/hash.js';
import { writeFileAtomic } from '../common/io.js';

export interface ShardInfo {
  file: string;
  count: number;
  bytes: number;
  sha256: string;
}

export const STAMPS_FILE = 'shards.verified.json';
const RACY_NS = 2_000_000_000n;

/** One digest over everything the records and labels come from (recorded by runs). */
export function cacheDigest(entriesSha256: string, shards: ShardInfo[]): string {
  return sha256([entriesSha256, ...shards.map((s) => `${s.file}:${s.bytes}:${s.sha256}`)].join('\n')).slice(
    0,
    32,
  );
}

/** The one refusal of a damaged cache file: what is wrong, and the rebuild hint. */
export const damaged = (dir: string, file: string, what: string, field?: string) =>
  new DataError(
    'bad-cache',
    `${what}; the cache is damaged: rebuild it with \`cxrmask cache\` (same options; intact shards are reused)`,
    { file: join(dir, file), ...(field ? { field } : {}) },
  );

/** Throws a DataError naming the shard when it is missing or not its recorded size. */
export function checkShardSize(dir: string, s: ShardInfo, recordBytes: number): void {
  const p = join(dir, s.file);
  if (!existsSync(p)) throw damaged(dir, s.file, 'shard file is missing');
  const want = s.count * recordBytes;
  const size = statSync(p).size;
  if (size !== want || size !== s.bytes)
    throw damaged(
      dir,
      s.file,
      `shard is ${size} bytes, expected ${want} (${s.count} records × ${recordBytes})`,
    );
}

export function checkContent(dir: string, file: string, got: string, want: string): void {
  if (got !== want)
    throw damaged(
      dir,
      file,
      `content checksum mismatch (sha256 ${got.slice(0, 12)}…, recorded ${want.slice(0, 12)}…)`,
    );
}

interface Stamp {
  sha256: string;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
  checkedAtNs: string;
}

function stampOf(path: string, hash: string): Stamp {
  const st = statSync(path, { bigint: true });
  return {
    sha256: hash,
    size: Number(st.size),
    mtimeNs: String(st.mtimeNs),
    ctimeNs: String(st.ctimeNs),
    ino: String(st.ino),
    checkedAtNs: String(BigInt(Date.now()) * 1_000_000n),
  };
}

function stampHolds(path: string, s: Stamp | undefined, hash: string): boolean {
  if (!s || s.sha256 !== hash) return false;
  const st = statSync(path, { bigint: true });
  if (Number(st.size) !== s.size || String(st.ino) !== s.ino) return false;
  if (String(st.mtimeNs) !== s.mtimeNs || String(st.ctimeNs) !== s.ctimeNs) return false;
  return BigInt(s.checkedAtNs) - st.ctimeNs > RACY_NS;
}

function readStamps(dir: string): Record<string, Stamp> {
  try {
    // not a regular file (a FIFO would block the read): no stamps, every shard is hashed
    if (!statSync(join(dir, STAMPS_FILE)).isFile()) return {};
    return JSON.parse(readFileSync(join(dir, STAMPS_FILE), 'utf8')) as Record<string, Stamp>;
  } catch {
    return {};
  }
}

/** Remember shards whose content was just verified (best effort: a read-only cache re-hashes next time). */
export function recordStamps(dir: string, verified: { file: string; sha256: string }[]): void {
  if (!verified.length) return;
  const stamps = readStamps(dir);
  for (const v of verified) stamps[v.file] = stampOf(join(dir, v.file), v.sha256);
  try {
    writeFileAtomic(join(dir, STAMPS_FILE), `${JSON.stringify(stamps)}\n`);
  } catch {
    // not writable: verification still happened, it is only not remembered
  }
}

/**
 * Open-time check of every shard: size always, content (SHA-256) where the stamp does not vouch for
 * it. Throws a DataError naming the first damaged shard. Returns how many shards were hashed.
 */
export function verifyShards(dir: string, shards: ShardInfo[], recordBytes: number): { hashed: number } {
  for (const s of shards) checkShardSize(dir, s, recordBytes);
  const stamps = readStamps(dir);
  const verified: { file: string; sha256: string }[] = [];
  for (const s of shards) {
    const p = join(dir, s.file);
    if (stampHolds(p, stamps[s.file], s.sha256)) continue;
    checkContent(dir, s.file, sha256File(p), s.sha256);
    verified.push({ file: s.file, sha256: s.sha256 });
  }
  recordStamps(dir, verified);
  return { hashed: verified.length };
}
