/** Shared fixtures for the data tests: one small synthetic tree per process, temp dirs, the CC0 image. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type SynthSummary, synthesize } from '../../ts/synth/synthesize.js';

const made: string[] = [];
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'cxrmask-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

let tree: Promise<SynthSummary> | null = null;
/** A 160-image synthetic MIMIC/CheXmask tree (small images), generated once per test process. */
export function synthTree(): Promise<SynthSummary> {
  tree ??= synthesize({ out: tempDir('cxrmask-synth-'), n: 160, seed: 11, width: 160, height: 192 });
  return tree;
}

export const FIXTURES = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'fixtures');
/** The CC0 PA radiograph shipped next to the repository, or null (tests then use the committed phantom). */
export function cc0Image(): string | null {
  const p = resolve(FIXTURES, '..', '..', '..', '..', 'shared', 'fixtures', 'cc0-pa-chest-xray.jpg');
  return existsSync(p) ? p : null;
}

export async function rejects(p: Promise<unknown>, re: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    const err = e as Error;
    if (!re.test(err.message)) throw new Error(`error message "${err.message}" does not match ${re}`);
    return err;
  }
  throw new Error(`expected a rejection matching ${re}`);
}
