/**
 * The TypeScript build info lives inside dist/: deleting dist/ deletes it too, so the next `tsc` (as
 * scripts/setup.sh runs it) emits every module again. Kept in build/, it outlived a deleted dist/ and
 * an incremental tsc re-emitted only the modules changed since, leaving dist/ without the rest. The
 * published package leaves it out.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../native/helpers.js';

const config = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as {
  compilerOptions: { outDir: string; incremental?: boolean; tsBuildInfoFile?: string };
};

test('tsc keeps its build info inside outDir, so a deleted dist/ is built whole again', () => {
  const o = config.compilerOptions;
  assert.ok(o.incremental && o.tsBuildInfoFile, 'incremental, with a named build info file');
  const inside = relative(resolve(ROOT, o.outDir), resolve(ROOT, o.tsBuildInfoFile!));
  assert.ok(!inside.startsWith('..'), `${o.tsBuildInfoFile} lies outside ${o.outDir}`);
});

test('npm pack leaves the build info out', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.is(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  assert.ok(
    files.some((f) => f === 'dist/index.js'),
    'dist/ is packed',
  );
  assert.equal(
    files.filter((f) => f.includes('tsbuildinfo')),
    [],
  );
});

test.run();
