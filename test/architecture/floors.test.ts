import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
// @ts-expect-error: a plain .mjs script without types
import { FLOORS, reExports, upwardImports } from '../../scripts/floors.mjs';

test('no module of ts/ imports a floor above its own', () => {
  const up = upwardImports('ts') as { floors: string; from: string; to: string }[];
  assert.deepEqual(
    up.map((u) => `${u.floors}: ${u.from} → ${u.to}`),
    [],
  );
});

test('the checker sees an upward import, a type-only one and a lazy one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'floors-'));
  try {
    for (const f of ['data', 'experiment', 'model']) mkdirSync(join(dir, f));
    writeFileSync(join(dir, 'experiment', 'io.ts'), 'export const x = 1;\n');
    writeFileSync(
      join(dir, 'data', 'a.ts'),
      "import { x } from '../experiment/io.js';\nexport const y = x;\n",
    );
    writeFileSync(join(dir, 'data', 'b.ts'), "import type { Z } from '../model/z.js';\nexport type W = Z;\n");
    writeFileSync(
      join(dir, 'model', 'z.ts'),
      "export type Z = 1;\nexport const l = () => import('../experiment/io.js');\n",
    );
    const up = (upwardImports(dir) as { from: string }[]).map((u) => u.from).sort();
    assert.deepEqual(up, ['data/a.ts', 'data/b.ts', 'model/z.ts']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

type ReExport = { file: string; line: number; what: string };

test('no module below the package root re-exports: ts/index.ts is the only barrel', () => {
  assert.deepEqual(
    (reExports('ts') as ReExport[]).map((r) => `${r.file}:${r.line}: ${r.what}`),
    [],
  );
});

test('the re-export check sees every form, and leaves the root, local names and declarations alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'floors-reexport-'));
  try {
    mkdirSync(join(dir, 'data'));
    const files: Record<string, string> = {
      'index.ts': "export * from './data/a.js';\nexport { b } from './data/b.js';\n",
      'data/a.ts': "export { x } from './x.js';\n",
      'data/b.ts': "export * from './x.js';\nexport * as ns from './x.js';\n",
      'data/c.ts': "export type {\n  T,\n  U,\n} from './x.js';\n",
      'data/d.ts':
        "import { x as y, type T } from './x.js';\nconst z = 1;\nexport {\n  z,\n  y as x,\n};\nexport type { T };\n",
      'data/e.ts': "import * as x from './x.js';\nimport w from './w.js';\nexport { w, x as xs };\n",
      'data/clean.ts':
        "import { x } from './x.js';\nimport type { T } from './x.js';\nconst own = x + 1;\nexport { own };\nexport type V = T;\nexport const q = x;\n// export * from './x.js';\n",
      'data/x.ts': 'export const x = 1;\nexport type T = 1;\nexport type U = 2;\n',
    };
    for (const [f, src] of Object.entries(files)) writeFileSync(join(dir, f), src);
    const found = (reExports(dir) as ReExport[]).map((r) => `${r.file}:${r.line}: ${r.what}`).sort();
    assert.deepEqual(found, [
      'data/a.ts:1: from ./x.js',
      'data/b.ts:1: from ./x.js',
      'data/b.ts:2: from ./x.js',
      'data/c.ts:1: from ./x.js',
      'data/d.ts:3: imported y',
      'data/d.ts:7: imported T',
      'data/e.ts:3: imported w, x',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('docs/architecture.md lists the same floors, in the same order', () => {
  const doc = readFileSync('docs/architecture.md', 'utf8');
  const rows = [...doc.matchAll(/^\| (\d+) \| ([^|]+) \|/gm)].map((m) =>
    m[2]!
      .split(',')
      .map((s) => s.trim().replace(/`/g, '').replace(/\/$/, '').replace(/\.ts$/, ''))
      .join(','),
  );
  assert.deepEqual(
    rows,
    (FLOORS as string[][]).map((f) => f.join(',')),
  );
});

test.run();
