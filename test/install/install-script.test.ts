/**
 * scripts/install.mjs, the one install step (npm `install`, `cxrmask setup`, scripts/setup.sh): the
 * order in which LibTorch is looked for, CXRMASK_SKIP_BUILD, and the one paragraph on failure.
 * Pythons here are stand-ins that print what the real probe prints; the build itself is exercised by
 * setup.sh on every CI run and by test/install/packed.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../native/helpers.js';

interface Found {
  how: string;
  python: string | null;
}
interface InstallModule {
  findTorch(env: NodeJS.ProcessEnv): Found;
  buildStamp(torch: Found, env: NodeJS.ProcessEnv): string;
  venvPaths(env: NodeJS.ProcessEnv): { venv: string; python: string; pin: string };
}
const script = join(ROOT, 'scripts', 'install.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-install-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** A `python3` that answers the torch probe with the given version. */
function fakePython(dir: string, version: string, name = 'python3'): string {
  mkdirSync(dir, { recursive: true });
  const p = join(dir, name);
  const facts = JSON.stringify({
    version,
    cmake: '/none',
    file: `/fake/${version}`,
    cuda: null,
    blas: 'mkl',
  });
  writeFileSync(p, `#!/bin/sh\necho '${facts}'\n`);
  chmodSync(p, 0o755);
  return p;
}

test('LibTorch order: LIBTORCH/Torch_DIR, then a Python torch of the pinned major.minor, then the venv', async () => {
  const m = (await import(pathToFileURL(script).href)) as InstallModule;
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  const home = join(tmp, 'home');
  const pin = m.venvPaths({ CXRMASK_HOME: home }).pin;
  assert.match(pin, /^\d+\.\d+$/);
  const venv = m.venvPaths({ CXRMASK_HOME: home });

  assert.match(
    m.findTorch({ LIBTORCH: '/opt/libtorch', PATH: empty, CXRMASK_HOME: home }).how,
    /^LIBTORCH=\/opt\/libtorch/,
  );
  assert.match(
    m.findTorch({ Torch_DIR: '/opt/t/share/cmake/Torch', PATH: empty, CXRMASK_HOME: home }).how,
    /^Torch_DIR=/,
  );

  const good = fakePython(join(tmp, 'good'), `${pin}.3+cpu`);
  const found = m.findTorch({ PATH: join(tmp, 'good'), CXRMASK_HOME: home });
  assert.is(found.python, good);
  assert.match(found.how, new RegExp(`^python torch ${pin.replace('.', '\\.')}\\.3\\+cpu`));

  // No venv yet and no python3 to make one: a clear error, not a crash.
  assert.throws(
    () => m.findTorch({ PATH: empty, CXRMASK_HOME: home }),
    /no python3 on PATH to create the venv/,
  );

  // Another torch on PATH is passed over for the pinned venv (here already made).
  fakePython(join(venv.venv, 'bin'), `${pin}.0`, 'python');
  writeFileSync(join(venv.venv, '.complete'), 'x');
  fakePython(join(tmp, 'old'), '1.13.1');
  const v = m.findTorch({ PATH: join(tmp, 'old'), CXRMASK_HOME: home });
  assert.is(v.python, venv.python);
  assert.match(v.how, /^pinned venv torch/);
  // CXRMASK_FORCE_VENV (scripts/setup.sh) prefers the venv even over a matching torch on PATH.
  assert.is(
    m.findTorch({ PATH: join(tmp, 'good'), CXRMASK_HOME: home, CXRMASK_FORCE_VENV: '1' }).python,
    venv.python,
  );
});

/** A copy of the package's build inputs, so a failing configure cannot touch the clone's build/. */
function packageCopy(name = 'pkg'): string {
  const dir = join(tmp, name);
  for (const f of [
    'package.json',
    'CMakeLists.txt',
    'scripts/install.mjs',
    'scripts/node-version.mjs',
    'tools/requirements.txt',
  ])
    cpSync(join(ROOT, f), join(dir, f), { recursive: true });
  for (const d of ['native', 'third_party']) cpSync(join(ROOT, d), join(dir, d), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

test('CXRMASK_SKIP_BUILD=1 builds nothing; a failed build ends with one paragraph and exit 1 (0 as npm install step)', () => {
  const dir = packageCopy();
  const run = (env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [join(dir, 'scripts', 'install.mjs')], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CXRMASK_HOME: join(tmp, 'home2'), ...env },
      timeout: 300_000,
    });
  const skipped = run({ CXRMASK_SKIP_BUILD: '1' });
  assert.is(skipped.status, 0);
  assert.match(skipped.stderr, /CXRMASK_SKIP_BUILD=1: not building/);

  const failed = run({ LIBTORCH: join(tmp, 'no-libtorch-here'), npm_lifecycle_event: '' });
  assert.is(failed.status, 1, failed.stderr);
  // inside a consumer's `npm install` the package stays installed, so `npx cxrmask setup` can rerun it
  const asInstallStep = run({ LIBTORCH: join(tmp, 'no-libtorch-here'), npm_lifecycle_event: 'install' });
  assert.is(asInstallStep.status, 0, asInstallStep.stderr);
  assert.match(asInstallStep.stderr, /cxrmask: the native addon was not built/);
  const paragraph = failed.stderr.slice(failed.stderr.indexOf('cxrmask: the native addon was not built'));
  assert.match(
    paragraph,
    /^cxrmask: the native addon was not built: cmake-js failed \(exit \d+\) building against LIBTORCH=/,
  );
  assert.match(paragraph, /rerun `npx cxrmask setup`/);
  assert.match(paragraph, /CXRMASK_SKIP_BUILD=1/);
  assert.match(
    failed.stderr.replace(/\s+/g, ' '),
    /has no share\/cmake\/Torch\/TorchConfig\.cmake/,
    'cmake names what is missing',
  );
  // a first build is not retried: cmake's error is printed once
  assert.is(
    failed.stderr.replace(/\s+/g, ' ').split('has no share/cmake/Torch/TorchConfig.cmake').length - 1,
    1,
  );
  assert.not.match(failed.stderr, /retrying from a clean build folder/);
  // cmake's advice names only what an installed package has: no scripts/setup.sh (not shipped)
  assert.not.match(failed.stderr, /setup\.sh/);
  assert.match(
    failed.stderr.replace(/\s+/g, ' '),
    /\(`npx cxrmask setup` does this in a venv in ~\/\.cache\/cxrmask/,
  );
  // in a source checkout (ts/ beside CMakeLists.txt) it names the clone's setup script
  mkdirSync(join(dir, 'ts'));
  const inClone = run({ LIBTORCH: join(tmp, 'no-libtorch-here'), npm_lifecycle_event: '' });
  assert.is(inClone.status, 1, inClone.stderr);
  assert.match(inClone.stderr, /\(in this clone, `bash scripts\/setup\.sh` does this in a venv/);
});

test('a build whose torch or CMake settings changed configures from clean (cmake-js rebuild); otherwise the CMake cache is kept (cmake-js build)', async () => {
  const m = (await import(pathToFileURL(script).href)) as InstallModule;
  const dir = packageCopy('pkg-stamp');
  const env = { ...process.env, CXRMASK_HOME: join(tmp, 'home3'), LIBTORCH: join(tmp, 'no-libtorch-here') };
  const run = () =>
    spawnSync(process.execPath, [join(dir, 'scripts', 'install.mjs')], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...env, npm_lifecycle_event: '' },
      timeout: 300_000,
    });
  const earlierBuild = (stamp: string) => {
    mkdirSync(join(dir, 'build'), { recursive: true });
    writeFileSync(join(dir, 'build', 'CMakeCache.txt'), '# an earlier build\n');
    writeFileSync(join(dir, 'build', 'native.stamp'), stamp);
  };
  // built for another torch: one clean configure, which fails here (no LibTorch), not retried
  earlierBuild('|/opt/other-libtorch|2.0.0 /other/torch mkl|');
  const changed = run();
  assert.is(changed.status, 1, changed.stderr);
  assert.match(changed.stderr, /settings changed since the last build: cmake-js rebuild/);
  assert.not.match(changed.stderr, /retrying from a clean build folder/);
  // the same settings (a source change): the cache is built incrementally; its failure is retried clean
  earlierBuild(m.buildStamp(m.findTorch(env), env));
  const same = run();
  assert.is(same.status, 1, same.stderr);
  assert.not.match(same.stderr, /settings changed since the last build/);
  assert.match(same.stderr, /retrying from a clean build folder/);
});

test.run();
