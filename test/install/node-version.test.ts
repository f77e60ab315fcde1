/**
 * An old Node gets one line and exit 1 from the bin and the install step, before anything that needs a
 * newer Node (yargs) is loaded. The check runs here with fake versions: no old Node is installed in CI.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../native/helpers.js';

interface NodeVersionModule {
  enginesNode(): string | null;
  nodeVersionProblem(version?: string, range?: string | null): string | null;
}
const check = (await import(
  pathToFileURL(join(ROOT, 'scripts', 'node-version.mjs')).href
)) as NodeVersionModule;
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-node-version-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

test("the range is package.json's engines.node", () => {
  assert.is(check.enginesNode(), pkg.engines.node);
  assert.is(check.enginesNode(), '>=20.19');
});

test('older than engines: one line naming both versions; as new or newer: null', () => {
  assert.is(check.nodeVersionProblem('18.20.8'), 'cxrmask needs Node >= 20.19 (this is 18.20.8)');
  assert.is(check.nodeVersionProblem('20.11.1'), 'cxrmask needs Node >= 20.19 (this is 20.11.1)');
  assert.is(check.nodeVersionProblem('v20.18.3'), 'cxrmask needs Node >= 20.19 (this is 20.18.3)');
  for (const ok of ['20.19.0', '20.20.1', '22.1.0', '24.0.0', 'v21.0.0'])
    assert.is(check.nodeVersionProblem(ok), null, ok);
  assert.is(
    check.nodeVersionProblem('20.19.4', '>=20.19.5'),
    'cxrmask needs Node >= 20.19.5 (this is 20.19.4)',
  );
  assert.is(check.nodeVersionProblem(process.versions.node), null, 'this Node runs the tests');
  // a range this check does not read is not refused
  assert.is(check.nodeVersionProblem('18.0.0', '^20 || ^22'), null);
});

test('the bin is the checking entry: it loads the check before the CLI, and runs the CLI', () => {
  assert.is(pkg.bin.cxrmask, 'bin/cxrmask.mjs');
  const bin = readFileSync(join(ROOT, pkg.bin.cxrmask), 'utf8');
  // static imports are only the check; the CLI (yargs) is imported after it passed
  const staticImports = [...bin.matchAll(/^import .* from '([^']+)'/gm)].map((m) => m[1]);
  assert.equal(staticImports, ['../scripts/node-version.mjs']);
  assert.ok(bin.indexOf('nodeVersionProblem()') < bin.indexOf("import('../dist/cli/main.js')"));
  for (const f of ['bin', 'scripts/node-version.mjs']) assert.ok(pkg.files.includes(f), `files lacks ${f}`);
  const r = spawnSync(process.execPath, [join(ROOT, pkg.bin.cxrmask), '--version'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), pkg.version);
});

/** Runs `script args` under this Node made to report `version` (set before the script loads). */
function asNode(version: string, script: string, args: string[]) {
  const fake = join(tmp, 'fake-version.mjs');
  writeFileSync(
    fake,
    `Object.defineProperty(process, 'versions', { value: { ...process.versions, node: ${JSON.stringify(version)} } });\n`,
  );
  return spawnSync(process.execPath, ['--import', pathToFileURL(fake).href, script, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CXRMASK_SKIP_BUILD: '1' },
  });
}

test('on an older Node the bin and the install step print the one line and exit 1', () => {
  for (const [script, args] of [
    [join(ROOT, pkg.bin.cxrmask), ['doctor']],
    [join(ROOT, 'scripts', 'install.mjs'), []],
    [join(ROOT, 'scripts', 'install.mjs'), ['--python']],
  ] as const) {
    const r = asNode('18.20.8', script, [...args]);
    assert.is(r.status, 1, `${script}: ${r.stderr}`);
    assert.is(r.stderr, 'cxrmask needs Node >= 20.19 (this is 18.20.8)\n');
    assert.is(r.stdout, '');
  }
  // and with a new enough version the install step goes on (here: CXRMASK_SKIP_BUILD)
  const ok = asNode('20.19.0', join(ROOT, 'scripts', 'install.mjs'), []);
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, 'CXRMASK_SKIP_BUILD=1');
});

test.run();
