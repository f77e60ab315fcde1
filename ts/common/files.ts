/**
 * Input paths must name regular files. A device (`/dev/zero`), a FIFO, a socket or a folder is
 * refused from its stat, before it is opened: reading one either never ends, blocks forever, or fills
 * memory. Symlinks are followed (a link to a real file is fine). Write targets likewise (saveTarget, for
 * every atomic write in io.ts): an atomic write renames over its path, which would replace the device
 * or FIFO. A symlink at a write's path is followed only where the caller named the path itself
 * (`links: 'follow'`); in a folder the program writes into (a run, a cache) it is replaced, and a
 * symlinked folder inside it is refused before any write (refuseLinkedFolders).
 */
import { lstatSync, readdirSync, readlinkSync, realpathSync, type Stats, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { DataError } from './errors.js';

/** What `st` is when it is not a regular file ("a FIFO", "a folder", …); null for a regular file. */
export function nonFileKind(st: Stats): string | null {
  if (st.isFile()) return null;
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * The stat of `file` once it is known to be a regular file.
 * @throws {DataError} `reasons.missing` (default `missing-file`) when it cannot be stat'ed ("cannot read
 *   <what>: ENOENT"),
 *   `reasons.notFile` (default `not-a-file`) when it is anything but a regular file.
 */
export async function statRegularFile(
  file: string,
  reasons: { missing?: string; notFile?: string; what?: string } = {},
): Promise<Stats> {
  const st = await stat(file).catch((e: NodeJS.ErrnoException) => {
    const what = reasons.what ? ` ${reasons.what}` : '';
    throw new DataError(reasons.missing ?? 'missing-file', `cannot read${what}: ${e.code ?? e.message}`, {
      file,
    });
  });
  checkRegularFile(st, file, reasons.notFile);
  return st;
}

/** Refuses `st` (of `file`) unless it is a regular file; `act` says what was refused. */
export function checkRegularFile(
  st: Stats,
  file: string,
  reason = 'not-a-file',
  act: 'read it' | 'write over it' = 'read it',
): void {
  const kind = nonFileKind(st);
  if (kind) throw new DataError(reason, `not a regular file (${kind}); refusing to ${act}`, { file });
}

/**
 * Synchronously refuses `file` when it exists and is not a regular file (a FIFO would block the load
 * that follows, a device never end); a missing file passes, for the caller's own "missing" error.
 * @returns its stat, or null when it cannot be stat'ed.
 */
export function refuseNonFile(file: string, reason = 'not-a-file'): Stats | null {
  let st: Stats;
  try {
    st = statSync(file);
  } catch {
    return null;
  }
  checkRegularFile(st, file, reason);
  return st;
}

/** Whether nothing is at `file` (ENOENT); false when something is, or when it cannot be looked at. */
export function nothingAt(file: string): boolean {
  try {
    statSync(file);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** Links followed before a save target is refused (Linux's own limit, ELOOP). */
const MAX_LINKS = 40;

/**
 * What an atomic write does with a symlink at its path. `follow`: the write goes to the link's target
 * (the link kept), for a path the caller named itself (`--out`, `Classifier.save(path)`). `replace`
 * (the default): the link itself is replaced by the new file and its target left alone, for the files a
 * run, cache or report writes inside its own folder: such a folder may come from someone else, and a
 * link planted in it (`table2.md -> ~/notes.txt`) must not choose where the program writes.
 */
export type LinkPolicy = 'follow' | 'replace';

/** Every LinkPolicy, for option checks. */
export const LINK_POLICIES = ['follow', 'replace'] as const satisfies readonly LinkPolicy[];

/**
 * The path a write to `file` lands at (every atomic write: results, reports, cache files, model saves):
 * `file` itself, or, when it is a symlink and `links` is `follow`, the file its chain of links ends at,
 * so that the temp file and the rename land beside the target: the link stays a link and its target gets
 * the new contents. A missing target is created, as for a missing file. With `replace`, a link at `file`
 * is `file` (the rename replaces the link, never touching its target).
 * @throws {DataError} `not-a-file`: the path (or, following, the link's target) exists and is a FIFO,
 *   device, socket or folder (the rename would replace it: once it was /dev/null), or the links loop.
 */
export function saveTarget(file: string, links: LinkPolicy = 'replace'): string {
  let p = file;
  for (let n = 0; n <= MAX_LINKS; n++) {
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      return p; // missing (created), or unreachable: the write itself names the errno
    }
    if (!st.isSymbolicLink()) {
      checkRegularFile(st, p, 'not-a-file', 'write over it');
      return p;
    }
    if (links === 'replace') return p;
    // as the kernel resolves it: from the folder the link really is in (a `..` through a linked folder)
    p = resolve(realpathSync(dirname(p)), readlinkSync(p));
  }
  throw new DataError('not-a-file', `more than ${MAX_LINKS} symbolic links; refusing to write over it`, {
    file,
  });
}

/**
 * The check of saveTarget repeated just before the rename of a write to `file` that began at
 * `target` (saveTarget then, with the same `links`): a write takes a while (a 2 GB checkpoint, a shard
 * of 1,024 images), and another process may since have put a FIFO, folder or link at the path, or
 * pointed the link elsewhere. The rename would replace that, or land where the path no longer leads.
 * @throws {DataError} `not-a-file` (as saveTarget), or `target-changed`: the path now leads elsewhere.
 */
export function recheckSaveTarget(file: string, target: string, links: LinkPolicy = 'replace'): void {
  const now = saveTarget(file, links);
  if (now !== target)
    throw new DataError(
      'target-changed',
      `now leads to ${now}, not to ${target} as when the write began; refusing to write over it`,
      { file },
    );
}

/**
 * Refuses a file path argument that is not a non-empty string or holds a NUL character: the addon
 * takes paths as C strings, which end at the first NUL (`a\0b.ckpt` was read and written as `a`).
 * @throws {TypeError}
 */
export function checkPathArg(path: unknown, name = 'path'): asserts path is string {
  if (typeof path !== 'string' || path === '') throw new TypeError(`${name} must be a non-empty string`);
  if (path.includes('\0')) throw new TypeError(`${name} must not contain a NUL character`);
}

/**
 * Refuses a symbolic link to a folder inside `root`, a folder the program owns and writes below (a run
 * folder, a cache's settings folder): at `sub` (a folder at or below `root`; default `root` itself), at
 * each folder between the two, and anywhere below `sub`. Such a folder may come from someone else, and a
 * planted `cells -> /elsewhere` would send every write below it (checkpoints, the temp files a resume
 * clears, the epochs it prunes) to /elsewhere, which replacing links at a file's own path (saveTarget)
 * cannot see. `root` itself may be a link (a `runs` folder on a bigger disk): it is the user's choice.
 * A link to a folder inside `root` (by real path: `cells/latest -> cells/lp-original-s0`) passes, as
 * writes through it stay inside. Missing folders pass (the program creates them); a link to a file is
 * saveTarget's to replace.
 * @param what the folder's role in the message (`run folder`, `cache folder`).
 * @throws {DataError} `linked-folder`, naming the link and where it leads.
 */
export function refuseLinkedFolders(root: string, what: string, sub: string = root): void {
  const refuse = (link: string) => {
    let to = '';
    try {
      to = readlinkSync(link);
    } catch {}
    throw new DataError(
      'linked-folder',
      `a symbolic link to a folder (-> ${to}) inside the ${what} ${root}: what the program writes below it would land outside the ${what}; refusing to write. To keep the ${what} on another disk, link the ${what} itself, or the folder holding it, instead: those may be links`,
      { file: link },
    );
  };
  let realRoot: string | null = null;
  const isLinkedFolder = (p: string, st: Stats) => {
    if (!st.isSymbolicLink()) return false;
    try {
      if (!statSync(p).isDirectory()) return false;
      realRoot ??= realpathSync(root);
      const to = relative(realRoot, realpathSync(p));
      return to === '..' || to.startsWith(`..${sep}`) || isAbsolute(to); // outside root
    } catch {
      return false; // dangling: nothing is written through it (mkdir below it fails)
    }
  };
  // the folders between root and sub, sub included
  const rel = relative(root, sub);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))
    throw new Error(`refuseLinkedFolders: ${sub} is not inside ${root}`);
  let p = root;
  for (const part of rel ? rel.split(sep) : []) {
    p = join(p, part);
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      return; // missing: nothing below it yet
    }
    if (isLinkedFolder(p, st)) refuse(p);
  }
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // missing, or not a folder: the write itself names the problem
    }
    for (const name of names) {
      const q = join(dir, name);
      let st: Stats;
      try {
        st = lstatSync(q);
      } catch {
        continue; // removed meanwhile
      }
      if (isLinkedFolder(q, st)) refuse(q);
      if (st.isDirectory()) walk(q);
    }
  };
  walk(sub);
}
