/**
 * A copy of the package with one dependency (zod) missing, as a broken install or a GPU-machine carry
 * without it: the command that needs it names it, under a low open-file limit too (it is not said as
 * "too many open files"), and scripts/cli-loads.mjs, the GPU check's setup step, names it before any
 * work starts, where `--help` alone loads no command.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = process.cwd();
const copy = mkdtempSync(join(tmpdir(), 'cxrmask-missing-package-'));

test.before(() => {
  for (const part of ['dist', 'bin', 'scripts', 'package.json'])
    cpSync(join(ROOT, part), join(copy, part), { recursive: true });
  const modules = join(copy, 'node_modules');
  mkdirSync(modules);
  for (const name of readdirSync(join(ROOT, 'node_modules')))
    if (name !== 'zod') symlinkSync(realpathSync(join(ROOT, 'node_modules', name)), join(modules, name));
});

function shell(line: string, cwd = copy) {
  const r = spawnSync('bash', ['-c', line], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NODE: process.execPath },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('a missing package is named, at a low open-file limit too, not said as too many open files', () => {
  for (const limit of [200, 1024]) {
    const r = shell(`ulimit -n ${limit} && "$NODE" bin/cxrmask.mjs predict --help`);
    assert.is(r.code, 1, `limit ${limit}: ${r.err}`);
    assert.match(r.err, /^error: Cannot find package 'zod' imported from /, `limit ${limit}`);
    assert.not.match(r.err, /too many open files/, `limit ${limit}`);
  }
});

test('the GPU check setup step loads every command: a missing package is named, the whole checkout loads', () => {
  // --help loads no command module, so it cannot see the missing package
  assert.is(shell('"$NODE" bin/cxrmask.mjs --help').code, 0);
  const r = shell('"$NODE" scripts/cli-loads.mjs');
  assert.is(r.code, 1, r.err);
  assert.match(r.err, /^dist\/[\w/-]+\.js: Cannot find package 'zod'/);
  const whole = shell('"$NODE" scripts/cli-loads.mjs', ROOT);
  assert.is(whole.code, 0, whole.err);
  assert.match(whole.out, /^\d+ modules of dist\/ load/);
  // and setup runs it
  assert.match(readFileSync(join(ROOT, 'scripts', 'gpu-check.sh'), 'utf8'), /node scripts\/cli-loads\.mjs/);
});

test.run();
