#!/usr/bin/env node
// The one install step of cxrmask: npm runs it on `npm install cxrmask` (the `install` script),
// `npx cxrmask setup` reruns it, scripts/setup.sh calls it in a clone. Plain Node, no dependencies
// beyond cmake-js and node-addon-api (both runtime dependencies), no package-lock needed.
//
// LibTorch, first found wins:
//   1. LIBTORCH (a LibTorch root) or Torch_DIR (its share/cmake/Torch), from the environment;
//   2. a Python torch on PATH (python3, then python) whose major.minor is the pinned one;
//   3. the pinned venv in $CXRMASK_HOME (default ~/.cache/cxrmask), created when missing with
//      `pip install -r tools/requirements.txt`.
// Then cmake-js builds build/Release/cxrmask_native.node (skipped when it is newer than every native
// source and was built against the same torch), and build/env.json records the Python that exports
// models. CXRMASK_SKIP_BUILD=1 skips everything (images that build later).
//
//   node scripts/install.mjs            install / rebuild when stale
//   node scripts/install.mjs --python   print the exporter's Python (creating the venv if needed)
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeVersionProblem } from './node-version.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (s) => process.stderr.write(`[cxrmask install] ${s}\n`);

class InstallError extends Error {}

/** Where the pinned venv lives; the name carries the hash of tools/requirements.txt. */
export function venvPaths(env = process.env) {
  const requirements = join(root, 'tools', 'requirements.txt');
  const text = readFileSync(requirements, 'utf8');
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  const home = env.CXRMASK_HOME || join(homedir(), '.cache', 'cxrmask');
  const venv = env.CXRMASK_VENV || join(home, `venv-${hash}`);
  const pin = /^torch==(\d+\.\d+)/m.exec(text)?.[1] ?? null;
  return { requirements, home, venv, python: join(venv, 'bin', 'python'), pin };
}

const TORCH_FACTS = [
  'import json, re, torch, torch.utils',
  'm = re.search(r"BLAS_INFO=(\\w+)", torch.__config__.show())',
  'print(json.dumps({"version": torch.__version__, "cmake": torch.utils.cmake_prefix_path,',
  '  "file": torch.__file__, "cuda": torch.version.cuda, "blas": m.group(1) if m else "none"}))',
].join('\n');

/** torch facts of a Python interpreter, or null when it has no importable torch. */
function torchOf(python) {
  const r = spawnSync(python, ['-c', TORCH_FACTS], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    return null;
  }
}

function onPath(name, env = process.env) {
  for (const dir of (env.PATH || '').split(delimiter)) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

const majorMinor = (v) => /^(\d+\.\d+)/.exec(v)?.[1] ?? v;

/** Creates the pinned venv (pip shows its own progress when it has a terminal). */
export function ensureVenv(paths = venvPaths(), env = process.env) {
  if (existsSync(join(paths.venv, '.complete'))) return paths.python;
  const base = onPath('python3', env) || onPath('python', env);
  if (!base) throw new InstallError('no python3 on PATH to create the venv with (Python >= 3.10 with venv is needed)');
  mkdirSync(dirname(paths.venv), { recursive: true });
  log(`creating the Python venv ${paths.venv} (torch ${paths.pin} and the exporter's packages from`);
  log('tools/requirements.txt; a first download is a few GB, later installs reuse it)');
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { stdio: ['ignore', process.stderr, process.stderr] });
    if (r.status !== 0) throw new InstallError(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal})`);
  };
  run(base, ['-m', 'venv', paths.venv]);
  run(paths.python, ['-m', 'pip', 'install', '--progress-bar', 'on', '-r', paths.requirements]);
  writeFileSync(join(paths.venv, '.complete'), `${new Date().toISOString()}\n`);
  return paths.python;
}

/** Which LibTorch to build against, in the documented order. */
export function findTorch(env = process.env) {
  const paths = venvPaths(env);
  const venvPython = existsSync(join(paths.venv, '.complete')) ? paths.python : null;
  if (env.LIBTORCH || env.Torch_DIR) {
    const py = [onPath('python3', env), onPath('python', env), venvPython].find((p) => p && torchOf(p));
    const how = env.LIBTORCH ? `LIBTORCH=${env.LIBTORCH}` : `Torch_DIR=${env.Torch_DIR}`;
    return { how, python: py ?? null, facts: null, stampFacts: py ? torchOf(py) : null };
  }
  if (!env.CXRMASK_FORCE_VENV) {
    for (const name of ['python3', 'python']) {
      const py = onPath(name, env);
      const facts = py && torchOf(py);
      if (!facts) continue;
      if (paths.pin && majorMinor(facts.version) !== paths.pin) {
        log(`${py} has torch ${facts.version}, not the pinned ${paths.pin}: using the pinned venv instead`);
        break;
      }
      return { how: `python torch ${facts.version} (${py})`, python: py, facts, stampFacts: facts };
    }
  }
  const python = ensureVenv(paths, env);
  const facts = torchOf(python);
  if (!facts) throw new InstallError(`${python} cannot import torch; delete ${paths.venv} and rerun \`npx cxrmask setup\``);
  return { how: `pinned venv torch ${facts.version} (${paths.venv})`, python, facts, stampFacts: facts };
}

function newestSource() {
  let newest = 0;
  const files = [join(root, 'CMakeLists.txt'), join(root, 'tools', 'requirements.txt')];
  for (const dir of ['native', 'third_party'])
    for (const f of readdirSync(join(root, dir))) files.push(join(root, dir, f));
  for (const f of files) newest = Math.max(newest, statSync(f).mtimeMs);
  return newest;
}

/**
 * What the addon was built against: LIBTORCH, Torch_DIR, the torch found and CXRMASK_CMAKE_ARGS (the
 * same stamp earlier setup.sh builds wrote, so an existing build is not redone).
 */
export function buildStamp(torch, env = process.env) {
  const f = torch.stampFacts;
  const facts = f ? `${f.version} ${f.file} ${f.blas}` : '';
  return [env.LIBTORCH ?? '', env.Torch_DIR ?? '', facts, env.CXRMASK_CMAKE_ARGS ?? ''].join('|');
}

const FAST_BLAS = /^(mkl|openblas|accelerate|blis|armpl|flexi)/;

/** Builds the addon unless it is up to date; writes build/env.json either way. */
export function install(env = process.env) {
  const torch = findTorch(env);
  if (torch.facts && !FAST_BLAS.test(torch.facts.blas))
    log(`WARNING: torch uses BLAS '${torch.facts.blas}', which is slow; the pip wheel (MKL on x86_64) is fast`);
  const build = join(root, 'build');
  const addon = join(build, 'Release', 'cxrmask_native.node');
  const stampFile = join(build, 'native.stamp');
  const stamp = buildStamp(torch, env);
  const oldStamp = existsSync(stampFile) ? readFileSync(stampFile, 'utf8') : null;
  const upToDate = existsSync(addon) && statSync(addon).mtimeMs > newestSource() && oldStamp === stamp;
  if (upToDate) {
    log('native addon up to date');
  } else {
    log(`building the native addon against ${torch.how} (several minutes; CXRMASK_JOBS=${env.CXRMASK_JOBS || 2} jobs)`);
    const require = createRequire(join(root, 'package.json'));
    const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
    const addonApi = dirname(require.resolve('node-addon-api/package.json'));
    const args = ['--parallel', String(env.CXRMASK_JOBS || 2), '--log-level', 'warn'];
    args.push(`--CDNODE_ADDON_API_DIR=${addonApi}`);
    if (torch.facts) args.push(`--CDCXRMASK_PYTHON=${torch.python}`);
    if (env.CXRMASK_CMAKE_ARGS) args.push(...env.CXRMASK_CMAKE_ARGS.split(/\s+/).filter(Boolean));
    const cmake = (command) =>
      spawnSync(process.execPath, [cmakeJs, command, ...args], { cwd: root, stdio: ['ignore', process.stderr, process.stderr] });
    // `cmake-js compile` retries every failure from a clean folder, so a fresh install printed each
    // CMake error twice; only a CMake cache left by an earlier build can be stale enough to need that.
    const hadCache = existsSync(join(build, 'CMakeCache.txt'));
    // `cmake-js build` configures only when there is no CMake cache, so a cache made for another
    // torch, LIBTORCH or CXRMASK_CMAKE_ARGS would be built as it is; a source change alone stays
    // incremental
    const settingsChanged = hadCache && oldStamp !== null && oldStamp !== stamp;
    if (settingsChanged) log('torch or CMake settings changed since the last build: cmake-js rebuild (a clean configure)');
    let r = cmake(settingsChanged ? 'rebuild' : 'build');
    if (r.status !== 0 && hadCache && !settingsChanged) {
      log('retrying from a clean build folder (the CMake cache of an earlier build may be stale)');
      r = cmake('rebuild');
    }
    if (r.status !== 0) throw new InstallError(`cmake-js failed (exit ${r.status ?? r.signal}) building against ${torch.how}`);
    mkdirSync(build, { recursive: true });
    writeFileSync(stampFile, stamp);
  }
  // cmake-js may clear build/ when it reconfigures, so this is written last.
  mkdirSync(build, { recursive: true });
  writeFileSync(join(build, 'env.json'), `${JSON.stringify({ python: torch.python, torch: torch.how }, null, 1)}\n`);
  return { addon, ...torch };
}

/** The Python that runs the exporters: build/env.json's, else the pinned venv (created if needed). */
export function exporterPython() {
  const envFile = join(root, 'build', 'env.json');
  if (existsSync(envFile)) {
    const py = JSON.parse(readFileSync(envFile, 'utf8')).python;
    if (py && existsSync(py)) return py;
  }
  return ensureVenv();
}

function failureParagraph(e) {
  const p = venvPaths();
  return [
    '',
    `cxrmask: the native addon was not built: ${e.message}.`,
    'cxrmask needs LibTorch, cmake >= 3.18 and a C++17 compiler (Debian/Ubuntu: apt-get install cmake g++ make',
    'python3-venv). LibTorch is taken from LIBTORCH or Torch_DIR if set, else from a Python torch',
    `${p.pin}.x on PATH, else from the pinned venv ${p.venv} (created by pip from tools/requirements.txt).`,
    'Fix what the lines above name, then rerun `npx cxrmask setup` (set CXRMASK_SKIP_BUILD=1 to install',
    'without building, e.g. in an image that builds later). Until then loading a model fails with "not built".',
    '',
  ].join('\n');
}

/**
 * As npm's `install` step of a consumer's `npm install`, a failed build leaves the package installed
 * (exit 0) so that `npx cxrmask setup` is there to rerun it; npm would otherwise roll the package back.
 * Run directly (`cxrmask setup`, setup.sh) a failure is exit 1.
 */
const asNpmInstallStep = () => process.env.npm_lifecycle_event === 'install';

function main() {
  try {
    if (process.argv.includes('--python')) {
      process.stdout.write(`${exporterPython()}\n`);
      return 0;
    }
    if (process.env.CXRMASK_SKIP_BUILD === '1') {
      log('CXRMASK_SKIP_BUILD=1: not building the native addon (run `npx cxrmask setup` later)');
      return 0;
    }
    const t0 = performance.now();
    const r = install();
    log(`ready: ${r.addon} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    return 0;
  } catch (e) {
    if (!(e instanceof InstallError)) throw e;
    process.stderr.write(failureParagraph(e));
    return asNpmInstallStep() ? 0 : 1;
  }
}

const self = fileURLToPath(import.meta.url);
if (process.argv[1] && resolve(process.argv[1]) === self) {
  // an old Node cannot run the package whatever is built: say so once (npm only warns about engines)
  const tooOld = nodeVersionProblem();
  if (tooOld) process.stderr.write(`${tooOld}\n`);
  process.exitCode = tooOld ? 1 : main();
}
