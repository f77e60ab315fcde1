/**
 * The one copy of the crash-safe write (every module that must survive a crash uses it): the target
 * resolved by saveTarget (a symlink at the path replaced, or with `links: 'follow'`, for a path the
 * caller named itself, written through: its target updated and the link kept; a FIFO, device, socket
 * or folder refused either way: the rename would replace it), parent folders made, data written
 * to a temp file beside the target, fsynced, the target checked again (recheckSaveTarget), renamed
 * over it, then the folder fsynced so the rename itself is durable; the temp file is removed on
 * error. Without the fsyncs a power loss after the rename can leave a zero-length or partial file
 * under the final name (ext4/xfs delayed allocation). Also JSON helpers that keep NaN as null.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError, DataError, NativeError } from './errors.js';
import { type LinkPolicy, recheckSaveTarget, refuseNonFile, saveTarget } from './files.js';

/** How an atomic write treats a symlink at its path (files.ts LinkPolicy; default `replace`). */
export interface AtomicWriteOptions {
  links?: LinkPolicy;
}

/**
 * A failed file-system call of a write to `path` as a DataError naming the file (a bare `ENOSPC` or
 * `EISDIR` names none); the system error's code stays on `code`. Other errors pass unchanged.
 */
export function writeFailure(path: string, e: unknown): unknown {
  const err = e as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof err.syscall !== 'string' || typeof err.code !== 'string') return e;
  let folder = false;
  try {
    folder = statSync(path).isDirectory();
  } catch {}
  const out = folder
    ? new DataError('output-is-folder', 'is a folder; expected the path of a file to write', { file: path })
    : new DataError('write-failed', `cannot write: ${err.message}`, { file: path });
  return Object.assign(out, { code: err.code, cause: err });
}

/**
 * This machine's name as a temp name carries it: only characters safe in a file name, and at most the
 * 64 bytes a Linux host name may have (so a temp name keeps room for the file's own name).
 */
const HOST = (hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'unknown').slice(0, 64);

/** The longest file name, and path (without its NUL), that Linux takes, in bytes. */
const NAME_MAX = 255;
const PATH_MAX = 4095;

/** `s` cut to at most `bytes` bytes of UTF-8, at a character boundary. */
function cutUtf8(s: string, bytes: number): string {
  const b = Buffer.from(s);
  if (b.length <= bytes) return s;
  let n = Math.max(0, bytes);
  while (n > 0 && ((b[n] as number) & 0xc0) === 0x80) n--;
  return b.subarray(0, n).toString();
}

/**
 * A temp path beside `path`: `<name>.tmp-<pid>-<hex>@<host>`, where `<name>` is the file's name cut
 * (at a character boundary) so that the temp's name fits 255 bytes and its path 4095: the suffix
 * (up to 86 bytes) made a valid name of over ~170 bytes unwritable, at a length that depended on the
 * machine's name. The host lets removeStaleTemps tell a dead local writer from a live one on another
 * machine sharing the disk (or another container: its pids are not ours to check).
 * @param host the writer's host as temp names carry it (tests: a long one); this machine's by default.
 */
export function tmpPathFor(path: string, host: string = HOST): string {
  const suffix = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}@${host}`;
  const at = path.lastIndexOf('/') + 1;
  const folderBytes = Buffer.byteLength(path.slice(0, at));
  const room = Math.min(NAME_MAX, PATH_MAX - folderBytes) - Buffer.byteLength(suffix);
  return path.slice(0, at) + cutUtf8(path.slice(at), room) + suffix;
}

/**
 * What tmpPathFor names a temp file, `<name>.tmp-<pid>-<hex>@<host>`; earlier versions (and the addon's
 * checkpoint writer) wrote `<name>.tmp-<pid>[-<hex>]`, without the host. A host name may itself hold
 * `.tmp-<digits>`, so the first `.tmp-` section is the writer's.
 */
const TEMP_NAME = /\.tmp-(\d+)(?:-[0-9a-f]+)?(?:@([A-Za-z0-9._-]+))?$/;
/**
 * The addon's temp inside a save to a tmpPathFor path: `<tmpPathFor's>.tmp-<pid>-<hex>`, both
 * sections written by one process (so the same pid).
 */
const NESTED_TEMP_NAME = /\.tmp-(\d+)(?:-[0-9a-f]+)?@([A-Za-z0-9._-]+)\.tmp-(\d+)(?:-[0-9a-f]+)?$/;

/**
 * Who wrote a temp file, read back from its name (tmpPathFor's, an older one's, or the addon's temp
 * of a tmpPathFor path): its pid, and its host (null for a temp without one); null for a name that is
 * not a temp's.
 */
export function tempOwner(name: string): { pid: number; host: string | null } | null {
  const nested = NESTED_TEMP_NAME.exec(name);
  if (nested && nested[1] === nested[3]) return { pid: Number(nested[1]), host: nested[2]! };
  const m = TEMP_NAME.exec(name);
  return m ? { pid: Number(m[1]), host: m[2] ?? null } : null;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files a killed or crashed writer left in `dir` (not recursive): those of this host
 * whose pid is not a live process. Returns the names removed. Resume calls it before it writes again.
 * A temp named for another host is left alone: its pid cannot be checked from here, and it may be a
 * build still writing on another machine that shares the disk. A temp without a host (an older
 * version, the addon's checkpoint writer) is judged by its pid, as before.
 */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const f of names) {
    const owner = tempOwner(f);
    if (!owner || (owner.host !== null && owner.host !== HOST) || processAlive(owner.pid)) continue;
    rmSync(join(dir, f), { force: true, recursive: true });
    removed.push(f);
  }
  return removed;
}

/**
 * A training checkpoint inside a run's own folder, written atomically, and a link planted at `path`
 * replaced, never followed. A model that says `savesAtomically` (Classifier, Segmenter: they stage and
 * rename themselves, honouring `links`) is called once, as a wrapping write would stage the file twice;
 * any other model's save (a user's backend may write the path plainly) writes a temp path that is
 * renamed into place here. A failed native write (full disk, quota: NativeError ERR_IO) becomes a
 * DataError('write-failed') naming `path`, as every other failed write of a run does.
 */
export async function saveCheckpoint(
  model: {
    save(path: string, o: { weightsOnly?: boolean; links?: LinkPolicy }): Promise<void>;
    readonly savesAtomically?: boolean;
  },
  path: string,
  o: { weightsOnly?: boolean } = {},
): Promise<void> {
  try {
    if (model.savesAtomically === true) await model.save(path, { ...o, links: 'replace' });
    else await withAtomicPath(path, (tmp) => model.save(tmp, { ...o }), { links: 'replace' });
  } catch (e) {
    if (e instanceof NativeError && e.code === 'ERR_IO')
      throw new DataError('write-failed', `not written: ${e.message.replace(/^cannot write \S+: /, '')}`, {
        file: path,
      });
    throw e;
  }
}

/**
 * fsync a file, or a folder's files (recursively) and then the folder; a folder is fsynced read-only.
 * For a staged temp path only: the folder it is renamed into gets fsyncEntry, which does not walk it.
 */
export function fsyncPath(path: string): void {
  if (statSync(path).isDirectory()) for (const f of readdirSync(path)) fsyncPath(join(path, f));
  fsyncEntry(path);
}

/**
 * fsync one path's own entry (after a rename into a folder, the folder: so the rename survives a
 * crash). Never its contents: walking an output's parent opened every file below it, which blocked
 * forever on a FIFO and failed on a folder the user may not read, after the file was in place.
 */
export function fsyncEntry(path: string): void {
  useFd(openSync(path, 'r'), (fd) => {
    try {
      fsyncSync(fd);
    } catch (e) {
      // some filesystems refuse fsync on a folder opened read-only; the data itself was synced above
      if (!fstatSync(fd).isDirectory()) throw e;
    }
  });
}

/**
 * Runs `use(fd)`, then closes `fd`. A failed close is thrown only after a `use` that succeeded (on a
 * network disk a close can report a failed write), never in place of `use`'s own error.
 */
function useFd<T>(fd: number, use: (fd: number) => T): T {
  let out: T;
  try {
    out = use(fd);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {}
    throw e;
  }
  closeSync(fd);
  return out;
}

/**
 * Removes a temp file (or folder) after a failed write, never throwing: the write's own error is the
 * one to report (a failed rm, e.g. ENAMETOOLONG or ENOTDIR like the write's, hid it and named the temp).
 */
function discard(path: string): void {
  try {
    rmSync(path, { force: true, recursive: true });
  } catch {}
}

function writeAllSync(path: string, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  useFd(openSync(path, 'w'), (fd) => {
    // one writeSync is refused over 2^31-1 bytes (predicted mask planes reach that at MIMIC scale)
    for (let off = 0; off < buf.byteLength; )
      off += writeSync(fd, buf, off, Math.min(buf.byteLength - off, IO_CHUNK_BYTES));
    fsyncSync(fd);
  });
}

/**
 * Writes `data` to `path` atomically (see the top of this file).
 * @param o.links `replace` (default): a symlink at the path is replaced, its target untouched;
 *   `follow`: its target is written (only for a path the caller named itself).
 * @throws {DataError} `not-a-file`: the path (or a followed link's target) is a FIFO, device, socket or
 *   folder, before or just before the rename; `target-changed`: the path now leads elsewhere (a link
 *   there, when following, was pointed elsewhere meanwhile);
 *   `write-failed`: a file-system call failed (the errno on `code`).
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, o: AtomicWriteOptions = {}): void {
  writeFilesAtomic([{ path, data }], o);
}

/** One file of writeFilesAtomic. */
export interface AtomicFile {
  path: string;
  data: string | Uint8Array;
}

/**
 * Writes files that belong together (a heat map and its numbers) so that a failure replaces none of
 * them: each is checked as writeFileAtomic checks it, then each is written to a temp beside its target
 * and synced, and only then are they renamed into place, in order. A rename failing after another
 * succeeded (a folder put at the path meanwhile) removes the files already placed, so the set never
 * mixes this call's files with an earlier call's.
 * @throws {DataError} as writeFileAtomic, naming the file that failed.
 */
export function writeFilesAtomic(files: readonly AtomicFile[], o: AtomicWriteOptions = {}): void {
  // every path is refused (a folder, a FIFO) before any temp is made
  const staged = files.map((f) => ({ ...f, target: saveTarget(f.path, o.links), tmp: '' }));
  const placed: string[] = [];
  let failing = '';
  try {
    for (const f of staged) {
      failing = f.path;
      mkdirSync(dirname(f.target), { recursive: true });
      f.tmp = tmpPathFor(f.target);
      writeAllSync(f.tmp, f.data);
    }
    for (const f of staged) {
      failing = f.path;
      recheckSaveTarget(f.path, f.target, o.links);
      renameSync(f.tmp, f.target);
      placed.push(f.target);
    }
  } catch (e) {
    for (const f of staged) if (f.tmp) discard(f.tmp);
    for (const t of placed) discard(t);
    throw writeFailure(failing, e);
  }
  for (const folder of new Set(staged.map((f) => dirname(f.target)))) fsyncEntry(folder);
}

/** writeFileAtomic without blocking the event loop (large cache shards); the same refusals. */
export async function writeFileAtomicAsync(
  path: string,
  data: string | Uint8Array,
  o: AtomicWriteOptions = {},
): Promise<void> {
  const target = saveTarget(path, o.links);
  const tmp = tmpPathFor(target);
  try {
    mkdirSync(dirname(target), { recursive: true });
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
    await fh.close();
    recheckSaveTarget(path, target, o.links);
    await rename(tmp, target);
  } catch (e) {
    discard(tmp);
    throw writeFailure(path, e);
  }
  fsyncEntry(dirname(target));
}

/** JSON.stringify with non-finite numbers as null (JSON has no NaN) and typed arrays as arrays. */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(
    value,
    (_k, v) => {
      if (typeof v === 'number' && !Number.isFinite(v)) return null;
      if (ArrayBuffer.isView(v) && !(v instanceof DataView))
        return Array.from(v as unknown as ArrayLike<number>);
      return v;
    },
    indent,
  );
}

export function writeJsonAtomic(path: string, value: unknown, o: AtomicWriteOptions = {}): void {
  writeFileAtomic(path, `${toJson(value)}\n`, o);
}

/**
 * A JSON file, or null when there is none.
 * @throws {DataError} `not-a-file`: a FIFO, device, socket or folder in its place (reading a FIFO
 *   blocks forever), naming the file. `bad-json`: it cannot be read or parsed, naming the file (a
 *   truncated result.json gave a bare SyntaxError).
 */
export function readJson<T>(path: string): T | null {
  if (!existsSync(path)) return null;
  refuseNonFile(path);
  try {
    return parseJsonText(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new DataError('bad-json', `cannot read: ${(e as Error).message}`, { file: path });
  }
}

/** JSON.parse after a byte-order mark (Windows editors save one; JSON.parse refuses it). */
export function parseJsonText(text: string): unknown {
  return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
}

/**
 * A JSON object file of settings (a model folder's model.json, tokenizer.json, …), with every way it
 * can be unusable named by its path: a bare SyntaxError or `Cannot read properties of null` named none.
 * @param what the file's role in messages (`model.json`, `tokenizer.json`).
 * @param o.maxBytes refuse a larger file before reading it.
 * @throws {DataError} `not-a-file`: a FIFO, device or folder (reading one blocks or never ends).
 * @throws {ConfigError} it cannot be read, is over `maxBytes`, is not JSON, or holds no JSON object.
 */
export function readJsonFile(
  path: string,
  what: string,
  o: { maxBytes?: number } = {},
): Record<string, unknown> {
  const st = refuseNonFile(path);
  if (st && o.maxBytes !== undefined && st.size > o.maxBytes)
    throw new ConfigError(`${path}: ${st.size} bytes, over the ${o.maxBytes} a ${what} may have`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `${path}: cannot read the ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (e) {
    throw new ConfigError(`${path}: the ${what} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError(
      `${path}: the ${what} must hold a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`,
    );
  return value as Record<string, unknown>;
}

/** null → NaN for numbers read back from JSON. */
export function num(v: number | null | undefined): number {
  return v === null || v === undefined ? Number.NaN : v;
}

/**
 * Write `f(tmp)` output atomically: the callback writes a temp path beside the target, which is
 * renamed into place (the same target resolution and refusals as writeFileAtomic). An error that
 * names the temp path (the addon's) names the target instead.
 */
export async function withAtomicPath(
  path: string,
  write: (tmp: string) => Promise<void>,
  o: AtomicWriteOptions = {},
): Promise<void> {
  const target = saveTarget(path, o.links);
  const tmp = tmpPathFor(target);
  try {
    mkdirSync(dirname(target), { recursive: true });
    await write(tmp);
    fsyncPath(tmp);
    // the write may have taken minutes: what is at the path now is what the rename replaces
    recheckSaveTarget(path, target, o.links);
    renameSync(tmp, target);
  } catch (e) {
    discard(tmp);
    if (e instanceof Error && e.message.includes(tmp)) e.message = e.message.replaceAll(tmp, target);
    throw writeFailure(path, e);
  }
  fsyncEntry(dirname(target));
}

/** Bytes per read or write call of a large file: one call is refused over 2^31-1 bytes. */
const IO_CHUNK_BYTES = 1 << 30;

/**
 * A whole binary file (feature matrix, predicted mask planes) in a new array, read in chunks by
 * position: readFileSync refuses a file over 2 GiB, which these reach at the real scale. The array owns
 * its buffer from byte 0, so a Float32Array can view it without a copy.
 * @throws {DataError} naming the file: `not-a-file` (a FIFO, device or folder: reading one blocks or
 *   never ends), `read-failed` (it cannot be opened or read, shrank while read, or is larger than an
 *   array may be).
 */
export function readBinaryFileSync(path: string): Uint8Array {
  refuseNonFile(path);
  const failed = (message: string) => new DataError('read-failed', message, { file: path });
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw failed(`cannot open: ${(e as Error).message}`);
  }
  return useFd(fd, () => {
    try {
      const size = fstatSync(fd).size;
      let out: Uint8Array;
      try {
        out = new Uint8Array(size);
      } catch (e) {
        throw failed(`${size} bytes, more than one array can hold here (${(e as Error).message})`);
      }
      for (let off = 0; off < size; ) {
        const got = readSync(fd, out, off, Math.min(size - off, IO_CHUNK_BYTES), off);
        if (got === 0) throw failed(`ended at byte ${off} of ${size}: the file shrank while it was read`);
        off += got;
      }
      return out;
    } catch (e) {
      throw e instanceof DataError ? e : failed(`cannot read: ${(e as Error).message}`);
    }
  });
}
