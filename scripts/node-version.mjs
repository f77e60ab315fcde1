// The Node version check of the bin (bin/cxrmask.mjs) and of scripts/install.mjs, against package.json's
// engines.node. Plain syntax and node: imports only, so that it runs on the old Node it refuses: npm
// only warns about engines, and an old Node would otherwise die with a SyntaxError inside a dependency.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** package.json's engines.node (">=20.19"). */
export function enginesNode() {
  return JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).engines?.node ?? null;
}

/**
 * The one line saying this Node is too old, or null when it is new enough (or the range is not the
 * plain `>=X.Y[.Z]` this package uses).
 */
export function nodeVersionProblem(version = process.versions.node, range = enginesNode()) {
  const want = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(String(range ?? '').trim());
  const have = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!want || !have) return null;
  for (let i = 1; i <= 3; i++) {
    const w = Number(want[i] ?? 0);
    const h = Number(have[i]);
    if (h > w) return null;
    if (h < w) {
      const needed = want.slice(1).filter((x) => x !== undefined).join('.');
      return `cxrmask needs Node >= ${needed} (this is ${version.replace(/^v/, '')})`;
    }
  }
  return null;
}
