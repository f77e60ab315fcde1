/**
 * Files and folders of a synthetic tree. A failed write (full disk, permissions, a name too long) is a
 * DataError naming the path, as the library's other writes (exit 2), and leaves no partial file.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { writeFailure } from '../common/io.js';

/** Writes `data` to `path` (not atomically: a synth tree is rebuilt as a whole when a write fails). */
export async function writeTreeFile(path: string, data: string | Uint8Array): Promise<void> {
  try {
    await writeFile(path, data);
  } catch (e) {
    // a truncated image must not pass for a whole one in the next index or cache
    await rm(path, { force: true }).catch(() => {});
    throw writeFailure(path, e);
  }
}

/** Creates `path` and its parents. */
export async function makeTreeFolder(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (e) {
    throw writeFailure(path, e);
  }
}
