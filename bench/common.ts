/** Helpers the benches share: where they live, which Python they compare against, medians. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/ (default output under bench/out) and the repository root. */
export const benchDir = dirname(fileURLToPath(import.meta.url));
export const root = resolve(benchDir, '..');

/** The project's Python: $CXRMASK_PYTHON, else the venv scripts/setup.sh made (build/env.json). */
export function venvPython(): string | undefined {
  if (process.env['CXRMASK_PYTHON']) return process.env['CXRMASK_PYTHON'];
  const env = join(root, 'build', 'env.json');
  if (existsSync(env)) return (JSON.parse(readFileSync(env, 'utf8')) as { python: string }).python;
  return undefined;
}

/** A --python given on the command line, else the project's, else python3 from PATH. */
export function pythonExe(given?: string): string {
  return given || venvPython() || 'python3';
}

export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
