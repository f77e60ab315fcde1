/**
 * Input paths must name regular files. A device (`/dev/zero`), a FIFO, a socket or a folder is
 * refused from its stat, before it is opened: reading one either never ends, blocks forever, or fills
 * memory. Symlinks are followed (a link to a real file is fine).
 */
import { type Stats, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
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

/** Refuses `st` (of `file`) unless it is a regular file. */
export function checkRegularFile(st: Stats, file: string, reason = 'not-a-file'): void {
  const kind = nonFileKind(st);
  if (kind) throw new DataError(reason, `not a regular file (${kind}); refusing to read it`, { file });
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
