import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
// @ts-expect-error: a plain .mjs script without types
import { FLOORS, upwardImports } from '../../scripts/floors.mjs';

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
