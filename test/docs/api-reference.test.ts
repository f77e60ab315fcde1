/**
 * The API reference in docs/api/ is generated from ts/index.ts and its doc comments (`npm run docs`).
 * These tests regenerate it into a temporary folder and fail when the committed copy differs, when
 * typedoc warns (an export without a doc comment, a type used by the API but not exported, a broken
 * link), or when a name the package root exports has no entry in the reference.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';
import { test } from 'uvu';

const TYPEDOC = join('node_modules', 'typedoc', 'bin', 'typedoc');
const REGENERATE = 'run `npm run docs` and commit docs/api/';

/** typedoc with the repository's typedoc.json (warnings are errors there), plus `args`. */
function typedoc(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [TYPEDOC, ...args], { encoding: 'utf8' });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the ANSI colours of typedoc's log
  const output = `${r.stdout}${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
  return { status: r.status, output };
}

/** Every file under `dir`, relative to it, sorted. */
function files(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
}

test('docs/api/ is what `npm run docs` generates now, and typedoc has nothing to warn about', () => {
  const out = mkdtempSync(join(tmpdir(), 'api-docs-'));
  try {
    const r = typedoc(['--out', out, '--logLevel', 'Warn']);
    assert.equal(r.status, 0, `typedoc failed (fix the doc comments or exports it names):\n${r.output}`);
    assert.equal(r.output.trim(), '', `typedoc warned:\n${r.output}`);
    const fresh = files(out);
    const committed = files('docs/api');
    assert.deepEqual(committed, fresh, `docs/api/ has other files than typedoc writes: ${REGENERATE}`);
    const stale = fresh.filter(
      (f) => readFileSync(join(out, f), 'utf8') !== readFileSync(join('docs/api', f), 'utf8'),
    );
    assert.deepEqual(stale, [], `stale pages in docs/api/: ${REGENERATE}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('typedoc, as configured, refuses an export without a doc comment', () => {
  const dir = mkdtempSync(join(tmpdir(), 'api-docs-undocumented-'));
  try {
    writeFileSync(
      join(dir, 'a.ts'),
      '/** Documented. */\nexport const a = 1;\nexport function b(): number {\n  return 2;\n}\n',
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, module: 'NodeNext', target: 'ES2022' },
        files: ['a.ts'],
      }),
    );
    // The repository's settings (validation, warnings as errors) on a one-file project.
    writeFileSync(
      join(dir, 'typedoc.json'),
      JSON.stringify({
        extends: [join(process.cwd(), 'typedoc.json')],
        entryPoints: ['a.ts'],
        tsconfig: 'tsconfig.json',
        out: 'out',
        intentionallyNotExported: [],
      }),
    );
    const r = typedoc(['--options', join(dir, 'typedoc.json')]);
    assert.notEqual(r.status, 0, r.output);
    assert.match(r.output, /\bb\b.*does not have any documentation/);
    assert.doesNotMatch(r.output, /\ba\b \(Variable\).*does not have any documentation/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The names ts/index.ts exports, read from its export statements (a parse, not a type check, which
 * would take longer than typedoc itself). A bare `export * from` would hide its names: an error.
 */
function rootExports(): string[] {
  const file = 'ts/index.ts';
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const names: string[] = [];
  for (const st of sf.statements) {
    if (ts.isExportDeclaration(st)) {
      const clause = st.exportClause;
      if (!clause) throw new Error(`${file}: \`${st.getText()}\` hides the names it exports; name them`);
      if (ts.isNamespaceExport(clause)) names.push(clause.name.text);
      else for (const el of clause.elements) names.push(el.name.text);
    } else if (
      ts.canHaveModifiers(st) &&
      ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
    ) {
      if (ts.isVariableStatement(st))
        for (const d of st.declarationList.declarations) names.push(d.name.getText());
      else names.push((st as { name?: ts.Identifier }).name?.text ?? 'default');
    }
  }
  return names;
}

test('every name the package root exports has an entry in docs/api/README.md', () => {
  const names = rootExports();
  assert.ok(
    names.length > 50 && names.includes('MaskingPredictor') && names.includes('metrics'),
    names.join(),
  );
  // Markdown escapes _ in the index
  const index = readFileSync('docs/api/README.md', 'utf8').replaceAll('\\_', '_');
  const missing = names.filter((n) => !index.includes(`[${n}](`));
  assert.deepEqual(missing, [], `exported from ts/index.ts but not in docs/api/: ${REGENERATE}`);
});

test('links from README.md and docs/*.md into the reference point at pages that exist', () => {
  const pages = [
    'README.md',
    ...readdirSync('docs')
      .filter((f) => f.endsWith('.md'))
      .map((f) => join('docs', f)),
  ];
  const links: string[] = [];
  const broken: string[] = [];
  for (const page of pages) {
    for (const m of readFileSync(page, 'utf8').matchAll(/\]\(((?:docs\/)?api\/[^)#\s]+)(?:#[^)]*)?\)/g)) {
      const target = join(dirname(page), m[1]!);
      links.push(target);
      if (!existsSync(target)) broken.push(`${page} → ${m[1]}`);
    }
  }
  assert.ok(links.length >= 5, `only ${links.length} links into docs/api/`);
  assert.deepEqual(broken, [], 'links to pages the reference no longer has');
});

test.run();
