/**
 * scripts/gpu-carry-deps.mjs lists the npm packages the GPU machine gets. The list must be closed under
 * Node's resolution: a package nested in another's node_modules requires its dependencies from its own
 * node_modules first, then the parents'. A walk by bare name once packed yargs' nested string-width but
 * not get-east-asian-width, which only that nested copy needs, and the CLI did not load there.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers.js';

const SCRIPT = join(ROOT, 'scripts', 'gpu-carry-deps.mjs');

function listIn(cwd: string) {
  return spawnSync(process.execPath, [SCRIPT], { cwd, encoding: 'utf8' });
}

function pkg(
  root: string,
  dir: string,
  deps: Record<string, string> = {},
  optional: Record<string, string> = {},
) {
  mkdirSync(join(root, dir), { recursive: true });
  const name = dir.split('node_modules/').pop();
  writeFileSync(
    join(root, dir, 'package.json'),
    JSON.stringify({ name, version: '1.0.0', dependencies: deps, optionalDependencies: optional }),
  );
}

/**
 * Where Node finds `name` when code in `fromDir` requires it: the first folder of Node's own lookup
 * list (require.resolve.paths) that holds the package, or null.
 */
function nodeResolves(fromDir: string, name: string): string | null {
  const paths = createRequire(join(fromDir, 'package.json')).resolve.paths(name) ?? [];
  const hit = paths.find((p) => existsSync(join(p, name, 'package.json')));
  return hit ? join(hit, name) : null;
}

test('a nested package requires from its own node_modules first, then the root; its deps travel too', () => {
  const root = mkdtempSync(join(tmpdir(), 'cxrmask-carry-deps-'));
  try {
    writeFileSync(join(root, 'package.json'), JSON.stringify({ dependencies: { a: '1', 'cmake-js': '7' } }));
    pkg(root, 'node_modules/a', { b: '2' });
    pkg(root, 'node_modules/a/node_modules/b', { c: '1' }); // b@2 nested under a needs c
    pkg(root, 'node_modules/b'); // b@1 at the top: nobody asked for it
    pkg(root, 'node_modules/c');
    pkg(root, 'node_modules/cmake-js', { d: '1' }); // the build driver stays here
    pkg(root, 'node_modules/tsx', {}, { 'not-this-platform': '1' });
    pkg(root, 'node_modules/node-addon-api');
    pkg(root, 'node_modules/node-api-headers');
    const r = listIn(root);
    assert.is(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n'), [
      'node_modules/a',
      'node_modules/c',
      'node_modules/node-addon-api',
      'node_modules/node-api-headers',
      'node_modules/tsx',
    ]);
    // a required package that is not installed is an error that names it and its requirer
    rmSync(join(root, 'node_modules/c'), { recursive: true });
    const missing = listIn(root);
    assert.is.not(missing.status, 0);
    assert.match(missing.stderr, /c \(needed by node_modules\/a\/node_modules\/b\) is not installed/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("this checkout's list is closed: every dependency of every packed package resolves inside it", () => {
  const r = listIn(ROOT);
  assert.is(r.status, 0, r.stderr);
  const listed = r.stdout.trim().split('\n');
  assert.ok(listed.includes('node_modules/yargs') && listed.includes('node_modules/get-east-asian-width'));
  const inside = (dir: string) =>
    listed.some((l) => dir === join(ROOT, l) || dir.startsWith(`${join(ROOT, l)}/`));
  // every package.json under the listed folders (nested ones included)
  const pkgDirs: string[] = [];
  const walk = (dir: string) => {
    if (existsSync(join(dir, 'package.json'))) pkgDirs.push(dir);
    const nm = join(dir, 'node_modules');
    if (!existsSync(nm)) return;
    for (const e of readdirSync(nm)) {
      if (e.startsWith('.')) continue;
      if (e.startsWith('@')) for (const s of readdirSync(join(nm, e))) walk(join(nm, e, s));
      else walk(join(nm, e));
    }
  };
  for (const l of listed) walk(join(ROOT, l));
  let checked = 0;
  for (const dir of pkgDirs) {
    const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: object };
    for (const dep of Object.keys(p.dependencies ?? {})) {
      const at = nodeResolves(dir, dep);
      assert.ok(
        at !== null && inside(at),
        `${dir.slice(ROOT.length + 1)} requires ${dep}: ${at ?? 'not installed'}`,
      );
      checked++;
    }
  }
  assert.ok(checked > 20, `${checked} dependencies checked`);
});

test.run();
