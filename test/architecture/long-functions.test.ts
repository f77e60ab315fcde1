/**
 * No function of ts/ runs over the line limit unless the comment above it says why ("on purpose": a
 * hot loop, one state machine); the checker itself sees long functions of every shape and their reasons.
 */
import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
// @ts-expect-error: a plain .mjs script without types
import { longFunctions } from '../../scripts/long-functions.mjs';

type Long = { file: string; name: string; lines: number; reason: boolean };

const key = (f: Long) => `${f.file} ${f.name}`;

test('every function of ts/ over the limit says why in its comment', () => {
  const unexplained = (longFunctions('ts') as Long[]).filter((f) => !f.reason).map(key);
  assert.deepEqual(unexplained, []);
});

test('the checker counts header to closing brace and reads the reason above functions, methods and arrows', () => {
  const dir = mkdtempSync(join(tmpdir(), 'long-fn-'));
  try {
    mkdirSync(join(dir, 'data'));
    const body = (n: number) => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
    writeFileSync(
      join(dir, 'data', 'a.ts'),
      [
        `export function short() {\n  let x = 0;\n${body(77)}\n  return x;\n}`, // 81 lines: short at limit 81
        `/** A hot loop, long on purpose. */\nexport function hot() {\n  let x = 0;\n${body(90)}\n  return x;\n}`,
        `class C {\n  /** Several jobs. */\n  method() {\n    let x = 0;\n${body(90)}\n    return x;\n  }\n}`,
        `// long on purpose: one pass\nexport const arrow = () => {\n  let x = 0;\n${body(90)}\n  return x;\n};`,
      ].join('\n\n'),
    );
    const found = (longFunctions(dir, 81) as Long[]).map((f) => [f.name, f.lines, f.reason]);
    assert.deepEqual(
      found.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ['arrow', 94, true],
        ['hot', 94, true],
        ['method', 94, false],
      ],
    );
    assert.deepEqual((longFunctions(dir, 80) as Long[]).map((f) => f.name).sort(), [
      'arrow',
      'hot',
      'method',
      'short',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
