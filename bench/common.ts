/** Helpers the benches share: where they live, which Python they compare against, medians. */
import { spawnSync } from 'node:child_process';
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

/**
 * The project's venv Python with `module` importable: tools/requirements-bench.txt (the baselines
 * the benches compare against, pinned) is installed into the venv on demand, never into a system
 * Python. Returns the Python and the module's version.
 */
export function benchPython(module: string): { python: string; version: string } {
  const python = venvPython();
  if (!python) throw new Error('build/env.json is missing: run scripts/setup.sh first (it creates the venv)');
  const probe = () =>
    spawnSync(python, ['-c', `import ${module}; print(${module}.__version__)`], { encoding: 'utf8' });
  let r = probe();
  if (r.status !== 0) {
    process.stderr.write(`[bench] installing tools/requirements-bench.txt into the venv (for ${module})\n`);
    const req = join(root, 'tools', 'requirements-bench.txt');
    const pip = spawnSync(python, ['-m', 'pip', 'install', '-q', '-r', req], { stdio: 'inherit' });
    if (pip.status !== 0) throw new Error('pip install of tools/requirements-bench.txt failed');
    r = probe();
    if (r.status !== 0) throw new Error(`${module} does not import after installing the bench requirements`);
  }
  return { python, version: r.stdout.trim() };
}

export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
