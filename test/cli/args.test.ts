/**
 * Loose arguments: every value that comes from the command line or a file
 * is checked where it enters, with an error naming the option or the file — never a raw TypeError,
 * EISDIR or ENOSPC, never a thread count that exhausts the process. CLI cases run the TypeScript
 * entry point in a subprocess (tsx).
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { writeFileAtomic } from '../../ts/common/io.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { distTimeoutMs, rootWorkTimeoutMs } from '../../ts/model/dist-env.js';
import { setThreads } from '../../ts/native.js';
import { MAIN, runCli, smallSynthArgs } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-args-'));

/** A bash command line (limits, namespaces, environment set around the CLI), colours off. */
function shell(line: string) {
  const r = spawnSync('bash', ['-c', line], { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('run --seeds 0,0 is refused with exit 2 before any work', () => {
  const r = runCli([
    'run',
    '--seeds',
    '0,0',
    '--cache',
    join(tmp, 'no-cache'),
    '--runs-dir',
    join(tmp, 'runs'),
  ]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /error: invalid --seeds "0,0": seed 0 is given twice/);
  assert.not.ok(readdirSync(tmp).includes('runs'), 'no run folder was made');
});

test('run --resume with experiment flags is refused (exit 2) naming them and config.json; --progress/--devices are taken', () => {
  const dir = join(tmp, 'runs-resume', 'R');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ data: { cache: join(tmp, 'no-cache') } }));
  const r = runCli([
    'run',
    '--resume',
    dir,
    '--ft-epochs',
    '10',
    '--seeds',
    '0,1,2',
    '--bootstrap',
    '7',
    '--threshold-rule',
    'fixed',
  ]);
  assert.is(r.code, 2, r.err);
  assert.ok(
    r.err.includes(
      `error: --resume ${dir} takes every setting from ${join(dir, 'config.json')}; --seeds, --ft-epochs, --threshold-rule, --bootstrap are not used with it.`,
    ),
    r.err,
  );
  assert.match(r.err, /Edit config\.json instead/);
  assert.match(r.err, /only --progress, --devices and --nproc are taken/);
  const one = runCli(['run', '--resume', dir, '--config', join(tmp, 'x.json')]);
  assert.is(one.code, 2, one.err);
  assert.match(one.err, /; --config is not used with it/);
  assert.equal(readdirSync(dir), ['config.json'], 'nothing started: no lock, no cells');
  // per-invocation flags pass (the run then stops at the missing cache, past this check)
  const ok = runCli(['run', '--resume', dir, '--no-progress', '--devices', 'cpu']);
  assert.not.match(ok.err, /not used with it/);
  assert.match(ok.err, /no-cache/);
});

test('an option given twice is refused for every single-valued option, naming it', () => {
  const a = runCli([
    'explain',
    '--image',
    'x.jpg',
    '--model',
    'm',
    '--finding',
    'Edema',
    '--out',
    'a.png',
    '--out',
    'b.png',
  ]);
  // the user's to fix: exit 2 and one line, not the help text and exit 1 (yargs' own failure handler)
  assert.is(a.code, 2, a.err);
  assert.equal(a.err.trim().split('\n'), [
    'error: --out was given 2 times (a.png, b.png); it takes one value',
  ]);
  assert.not.match(a.err, /TypeError/);
  const b = runCli(['serve', '--threads', '1', '--threads', '2', '--model', join(tmp, 'none')]);
  assert.match(b.err, /--threads was given 2 times \(1, 2\)/);
  const c = runCli(['run', '--seeds', '0', '--seeds', '1', '--cache', join(tmp, 'none')]);
  assert.match(c.err, /--seeds was given 2 times/);
});

test('serve: --threads above the bound, --grace negative or NaN are refused (exit 2)', () => {
  const none = join(tmp, 'no-model');
  const t = runCli(['serve', '--threads', '100000', '--model', none]);
  assert.is(t.code, 2, t.err);
  assert.match(t.err, /--threads 100000: 100000 is above the limit of \d+ \(4× the \d+ cores, at least 16\)/);
  for (const g of ['-1', 'NaN']) {
    const r = runCli(['serve', `--grace=${g}`, '--model', none]);
    assert.is(r.code, 2, r.err);
    assert.match(r.err, /--grace NaN|--grace -1/);
    assert.match(r.err, /expected seconds from 0 to 86400/);
  }
});

test('setThreads and config model.threads are bounded', () => {
  assert.throws(
    () => setThreads(100_000),
    (e: Error) => e instanceof RangeError && /above the limit/.test(e.message),
  );
  assert.throws(() => setThreads(0), /positive integer/);
  assert.throws(
    () => parseConfig({ data: { cache: 'c' }, model: { threads: 100_000 } }),
    (e: Error) => e instanceof ConfigError && /model\.threads: 100000 is above the limit/.test(e.message),
  );
  // the bound is at least 16 whatever the machine
  assert.is(parseConfig({ data: { cache: 'c' }, model: { threads: 16 } }).model.threads, 16);
});

test('segmenter train --epochs 0 (and other bad counts) are refused before loading anything', () => {
  const base = ['segmenter', 'train', '--cache', join(tmp, 'none'), '--out', join(tmp, 'seg')];
  const e = runCli([...base, '--epochs', '0']);
  assert.is(e.code, 2, e.err);
  assert.match(e.err, /error: --epochs 0: expected an integer ≥ 1/);
  assert.match(runCli([...base, '--batch-size', '2.5']).err, /--batch-size 2\.5: expected an integer ≥ 1/);
  assert.match(runCli([...base, '--lr', '-1']).err, /--lr -1: must be a finite number from 0 to 1, got -1/);
  assert.match(runCli([...base, '--lr', '1e308']).err, /--lr 1e\+308: must be a finite number from 0 to 1/);
});

test('explain --out naming a folder is refused before the model runs; a library write names the folder', () => {
  const dir = join(tmp, 'a-folder');
  mkdirSync(dir);
  const r = runCli([
    'explain',
    '--image',
    'x.jpg',
    '--model',
    'models/tiny',
    '--finding',
    'Edema',
    '--out',
    dir,
  ]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, new RegExp(`--out ${dir}: is a folder; give the path of the file to write`));
  assert.not.match(r.err, /EISDIR/);
  assert.throws(
    () => writeFileAtomic(dir, 'x'),
    (e: Error) =>
      e.name === 'DataError' &&
      e.message === `${dir}: not a regular file (a folder); refusing to write over it`,
  );
  assert.equal(readdirSync(dir), [], 'no temp file left');
});

test('explain --out naming a FIFO is refused before the model runs, not replaced at the end', () => {
  const fifo = join(tmp, 'out-fifo.png');
  spawnSync('mkfifo', [fifo]);
  const r = runCli([
    'explain',
    '--image',
    'x.jpg',
    '--model',
    'models/tiny',
    '--finding',
    'Edema',
    '--out',
    fifo,
  ]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, `--out ${fifo}: not a regular file (a FIFO); refusing to write over it`);
});

test('a write that fails for lack of space names the file it was writing', () => {
  // RLIMIT_FSIZE: the kernel refuses writes beyond 1 KiB (EFBIG), as a full disk refuses them (ENOSPC)
  const target = join(tmp, 'limited', 'big.bin');
  const script = join(tmp, 'write-big.ts');
  writeFileSync(
    script,
    `import { writeFileAtomic } from ${JSON.stringify(join(process.cwd(), 'ts/common/io.ts'))};
try { writeFileAtomic(${JSON.stringify(target)}, new Uint8Array(1 << 20)); } catch (e) { console.log(e.name, e.code, e.message); }`,
  );
  const r = shell(`ulimit -f 1; ${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(script)}`);
  assert.match(r.out, new RegExp(`^DataError EFBIG ${target}: cannot write: EFBIG`), r.out + r.err);
  assert.equal(readdirSync(join(tmp, 'limited')), [], 'the temp file is removed');
});

test('cxrmask cache on a full disk names the file it could not write (small tmpfs)', () => {
  // a private mount namespace with a 256 KiB tmpfs where user namespaces allow it
  const probe = spawnSync('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs ${tmp}`]);
  if (probe.status !== 0) {
    console.log(`  (skipped: cannot mount a tmpfs here: ${String(probe.stderr).trim()})`);
    return;
  }
  const d = join(tmp, 'data');
  const synth = runCli(smallSynthArgs(d));
  assert.is(synth.code, 0, synth.err);
  const idx = runCli(['index', '--root', join(d, 'mimic'), '--out', join(d, 'idx')]);
  assert.is(idx.code, 0, idx.err);
  const full = join(tmp, 'full');
  mkdirSync(full);
  const args = [
    'cache',
    '--index',
    join(d, 'idx'),
    '--root',
    join(d, 'mimic'),
    '--chexmask',
    join(d, 'chexmask', 'MIMIC-CXR-JPG.csv'),
    '--out',
    join(full, 'cache'),
    '--no-progress',
  ]
    .map((a) => JSON.stringify(a))
    .join(' ');
  const r = shell(
    `unshare -rm sh -c 'mount -t tmpfs -o size=256k tmpfs ${full} && exec ${JSON.stringify(process.execPath)} --import tsx ${MAIN} ${args.replaceAll("'", "'\\''")}'`,
  );
  assert.is(r.code, 2, r.err);
  assert.match(r.err, new RegExp(`error: ${full}/cache/[^ ]+: cannot write: ENOSPC`), r.err);
});

// The sweep: every other place a path, a size or a count comes from outside.

test('--nproc is bounded and checked before any rank starts', () => {
  const r = runCli(['run', '--cache', join(tmp, 'none'), '--nproc', '100000']);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /error: --nproc 100000: expected an integer from 1 to \d+/);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace');
});

test('--config that is a device, a FIFO or a folder is refused instead of read without end', () => {
  const fifo = join(tmp, 'config.fifo');
  spawnSync('mkfifo', [fifo]);
  for (const c of ['/dev/zero', fifo, tmp]) {
    const r = runCli(['run', '--config', c]);
    assert.is(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`error: cannot read config file ${c}: not a regular file`));
  }
  const big = join(tmp, 'big.json');
  writeFileSync(big, `{"name": "${'x'.repeat(2 << 20)}"}`);
  assert.match(runCli(['run', '--config', big]).err, /bytes, above the 1048576 a config may have/);
});

test('distributed timeouts from the environment are checked (a bad root timeout was silently 600 s)', () => {
  assert.throws(
    () => rootWorkTimeoutMs({ CXRMASK_DIST_ROOT_TIMEOUT: 'abc' }),
    (e: Error) =>
      e instanceof ConfigError &&
      /CXRMASK_DIST_ROOT_TIMEOUT=abc must be a positive number of seconds \(at least 0\.001\)/.test(
        e.message,
      ),
  );
  // it rounded to 0 ms and failed later in the addon, naming no variable
  assert.throws(
    () => distTimeoutMs({ CXRMASK_DIST_TIMEOUT: '0.0004' }),
    /CXRMASK_DIST_TIMEOUT=0\.0004 must be/,
  );
  assert.is(distTimeoutMs({ CXRMASK_DIST_TIMEOUT: '0.001' }), 1);
  assert.throws(() => distTimeoutMs({ CXRMASK_DIST_TIMEOUT: '1e300' }), /CXRMASK_DIST_TIMEOUT=1e300/);
  assert.throws(() => rootWorkTimeoutMs({ CXRMASK_DIST_ROOT_TIMEOUT: '-5' }), /at most 2592000/);
  assert.is(rootWorkTimeoutMs({}), 24 * 3600 * 1000);
  assert.is(distTimeoutMs({ CXRMASK_DIST_TIMEOUT: '90' }), 90_000);
  const r = shell(
    `CXRMASK_DIST_ROOT_TIMEOUT=abc WORLD_SIZE=2 RANK=1 ${JSON.stringify(process.execPath)} --import tsx ${MAIN} run --cache ${join(tmp, 'none')}`,
  );
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /error: CXRMASK_DIST_ROOT_TIMEOUT=abc/);
});

test('bootstrap resamples are bounded; raw option-schema errors read as option: problem', () => {
  assert.throws(
    () => parseConfig({ data: { cache: 'c' }, metrics: { bootstrap: 1e9 } }),
    /metrics\.bootstrap: Too big: expected number to be <=100000/,
  );
  const r = runCli(['synth', '--out', join(tmp, 's'), '--n', '1e12', '--width', '1e6']);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /error: invalid option: n: Too big: expected number to be <=\d+; width: Too big/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
