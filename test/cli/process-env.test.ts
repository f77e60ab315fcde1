/**
 * The CLI in the process around it: output pipes whose reader goes away, a deleted working folder, a
 * small open-file limit, `--` before a file name starting with '-', and folders or files it cannot
 * make. The built CLI (bin/cxrmask.mjs → dist/) runs in subprocesses, as a job scheduler starts it.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { operandsAfterDashDash } from '../../ts/cli/main.js';
import { smallSynthArgs, startServe } from './helpers.js';

const ROOT = process.cwd();
const BIN = join(ROOT, 'bin', 'cxrmask.mjs');
const MODEL = join(ROOT, 'models', 'tiny');
const IMAGE = join(ROOT, 'test', 'data', 'fixtures', 'phantom-640x768.jpg');
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-process-env-'));
const env = { ...process.env, FORCE_COLOR: '0' };

/** `cxrmask …args` from `cwd` (this checkout by default) to its end. */
function cli(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A bash command line; `$CXRMASK` is the CLI (node and the bin, two words). */
function shell(line: string, cwd = ROOT) {
  const r = spawnSync('bash', ['-c', line], {
    cwd,
    encoding: 'utf8',
    env: { ...env, CXRMASK: `${process.execPath} ${BIN}` },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Resolves with the child's exit code (null after a signal). */
const exited = (child: ChildProcess) =>
  new Promise<number | null>((ok) => {
    if (child.exitCode !== null) ok(child.exitCode);
    else child.on('exit', (code) => ok(code));
  });

let cache = '';

test.before(() => {
  const d = join(tmp, 'data');
  const steps = [
    smallSynthArgs(d),
    // the label policy a run asks for by default
    ['index', '--root', join(d, 'mimic'), '--out', join(d, 'idx'), '--uncertain', 'ignore'],
    ['cache', '--index', join(d, 'idx'), '--root', join(d, 'mimic')]
      .concat(['--chexmask', join(d, 'chexmask', 'MIMIC-CXR-JPG.csv'), '--out', join(d, 'cache')])
      .concat(['--no-progress']),
  ];
  for (const s of steps) {
    const r = cli(s);
    assert.is(r.code, 0, `${s[0]}: ${r.err}`);
  }
  cache = join(d, 'cache');
});

const tinyRun = (runsDir: string, name = 't') =>
  ['run', '--cache', cache, '--model', MODEL, '--runs-dir', runsDir, '--name', name, '--seeds', '0']
    .concat(['--lp-epochs', '1', '--ft-epochs', '1', '--bootstrap', '10', '--no-progress', '--threads', '1'])
    .concat(['--devices', 'cpu']);

test('run: stdout and stderr whose readers are gone after the first line; the run still finishes (exit 0, results written)', async () => {
  const runs = join(tmp, 'runs-epipe');
  const child = spawn(process.execPath, [BIN, ...tinyRun(runs)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let firstErr = '';
  // as `cxrmask run 2>&1 | head -1`: each reader leaves after its first chunk
  child.stdout!.once('data', () => child.stdout!.destroy());
  child.stderr!.once('data', (d) => {
    firstErr = String(d);
    child.stderr!.destroy();
  });
  assert.is(await exited(child), 0, `first stderr line: ${firstErr}`);
  const [dir] = readdirSync(runs);
  assert.ok(dir, 'a run folder was made');
  const files = readdirSync(join(runs, dir!));
  assert.ok(files.includes('results.json'), files.join(' '));
  assert.ok(files.includes('table2.md'), files.join(' '));
  assert.not.ok(files.includes('run.lock'), 'the lock was released');
});

/** POST an image to `url`/predict; resolves with the status code. */
function postImage(url: string, bytes: Buffer): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request(
      `${url}/predict`,
      { method: 'POST', headers: { 'content-type': 'image/jpeg' } },
      (res) => {
        res.resume();
        res.on('end', () => ok(res.statusCode ?? 0));
      },
    );
    req.on('error', fail);
    req.end(bytes);
  });
}

test('serve keeps answering after the reader of its request log is gone', async () => {
  const s = await startServe(
    process.execPath,
    [BIN, 'serve', '--model', MODEL, '--device', 'cpu', '--port', '0'],
    {
      cwd: ROOT,
      env,
    },
  );
  try {
    const bytes = readFileSync(IMAGE);
    assert.is(await postImage(s.url, bytes), 200);
    // the first request's log line has come or is coming: the log reader leaves
    s.child.stderr!.destroy();
    for (let i = 0; i < 3; i++) assert.is(await postImage(s.url, bytes), 200, `request ${i + 2}`);
    assert.is(s.child.exitCode, null, 'serve is still running');
  } finally {
    s.child.kill('SIGTERM');
    await exited(s.child);
  }
});

test('a deleted working folder: one error line and exit 2, for --version and for a command with absolute paths', () => {
  const gone = join(tmp, 'gone');
  for (const args of [
    '--version',
    `run --cache ${cache} --model ${MODEL} --runs-dir ${join(tmp, 'runs-gone')}`,
  ]) {
    mkdirSync(gone);
    const r = shell(`cd ${gone} && rmdir ${gone} && $CXRMASK ${args}`);
    assert.is(r.code, 2, r.err);
    assert.is(
      r.err,
      'error: the current folder no longer exists (cd to an existing folder and run it again)\n',
    );
  }
});

test('an open-file limit of 64: --version and --help work; a command too big to load says so in one line', () => {
  const v = shell('ulimit -n 64 && $CXRMASK --version');
  assert.is(v.code, 0, v.err);
  assert.match(v.out, /^\d+\.\d+\.\d+/);
  const h = shell('ulimit -n 64 && $CXRMASK --help');
  assert.is(h.code, 0, h.err);
  for (const c of ['demo', 'run', 'predict <image>', 'serve', 'segmenter <action>', 'setup'])
    assert.ok(h.out.includes(`cxrmask ${c} `), `--help lists ${c}`);
  // `run` pulls in most of the library; it either loads or is refused in one line, never a stack
  const r = shell('ulimit -n 64 && $CXRMASK run --help');
  if (r.code !== 0) {
    assert.is(r.code, 2, r.err);
    assert.match(
      r.err,
      /^error: cannot load the run command: too many open files \(the open-file limit is 64\); raise/,
    );
    assert.is(r.err.trim().split('\n').length, 1, r.err);
  } else assert.match(r.out, /--lp-epochs/);
});

test('commands list the same options when loaded on use: run --help, segmenter train --help', () => {
  assert.match(cli(['run', '--help']).out, /--lp-epochs[\s\S]*--nproc/);
  assert.match(cli(['segmenter', 'train', '--help']).out, /--epochs/);
  const bad = cli(['run', '--bogus-flag']);
  assert.is(bad.code, 2);
  assert.equal(bad.err.trim().split('\n'), [
    'error: Unknown argument: bogus-flag (`cxrmask run --help` lists the options)',
  ]);
});

test('`--` before a file name starting with "-": predict -- -x.jpg reads ./-x.jpg', () => {
  assert.equal(operandsAfterDashDash(['predict', '--json', '--', '-x.jpg']), [
    'predict',
    '--json',
    './-x.jpg',
  ]);
  assert.equal(operandsAfterDashDash(['eval', '--', 'R', '--', '-']), ['eval', 'R', './--', './-']);
  assert.equal(operandsAfterDashDash(['run', '--seeds', '0']), ['run', '--seeds', '0']);
  const dir = join(tmp, 'dash');
  mkdirSync(dir);
  copyFileSync(IMAGE, join(dir, '-x.jpg'));
  const r = cli(['predict', '--model', MODEL, '--device', 'cpu', '--json', '--', '-x.jpg'], dir);
  assert.is(r.code, 0, r.err);
  assert.ok(Object.keys(JSON.parse(r.out).original).length === 5, r.out);
  const missing = cli(['eval', '--', '-no-run'], dir);
  assert.is(missing.code, 2, missing.err);
  assert.match(missing.err, /\.\/-no-run/);
});

test('run folders that cannot be made: a DataError naming the path, exit 2; a --name over 200 characters is refused for a new run, an older run with a longer name still resumes', () => {
  const file = join(tmp, 'a-file');
  writeFileSync(file, 'x');
  const under = cli(tinyRun(join(file, 'runs')));
  assert.is(under.code, 2, under.err);
  assert.match(under.err, new RegExp(`^error: ${file}/runs: cannot write: ENOTDIR`));
  const long = cli(tinyRun(join(tmp, 'runs-long'), 'n'.repeat(201)));
  assert.is(long.code, 2, long.err);
  assert.match(long.err, /name: at most 200 characters/);
  assert.not.ok(existsSync(join(tmp, 'runs-long')), 'nothing was made');
  // a run an earlier version made with a longer name (up to 239) still evaluates and resumes
  const made = cli(tinyRun(join(tmp, 'runs-old')));
  assert.is(made.code, 0, made.err);
  const old = join(tmp, 'runs-old', readdirSync(join(tmp, 'runs-old'))[0]!);
  const saved = JSON.parse(readFileSync(join(old, 'config.json'), 'utf8'));
  writeFileSync(join(old, 'config.json'), JSON.stringify({ ...saved, name: 'n'.repeat(220) }));
  const evaluated = cli(['eval', old]);
  assert.is(evaluated.code, 0, evaluated.err);
  const resumed = cli(['run', '--resume', old, '--no-progress']);
  assert.is(resumed.code, 0, resumed.err);
  // a runs folder this process may not write in (root's permission bypass dropped, where it is root)
  const ro = join(tmp, 'ro-runs');
  mkdirSync(ro, { mode: 0o555 });
  const drop =
    process.getuid?.() === 0 ? 'setpriv --bounding-set=-dac_override,-dac_read_search,-fowner ' : '';
  const args = tinyRun(ro)
    .map((a) => JSON.stringify(a))
    .join(' ');
  const r = shell(`${drop}$CXRMASK ${args}`);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, new RegExp(`^error: ${ro}/\\d{8}-\\d{6}-t: cannot write: EACCES`));
});

test('synth whose image writes fail (a 1 KiB file-size limit): a DataError naming the image, exit 2, no partial image', () => {
  for (const workers of ['0', '2']) {
    const out = join(tmp, `synth-fsize-${workers}`);
    const args = [...smallSynthArgs(out), '--workers', workers].map((a) => JSON.stringify(a)).join(' ');
    const r = shell(`ulimit -f 1 && $CXRMASK ${args}`);
    assert.is(r.code, 2, `workers ${workers}: ${r.err}`);
    assert.match(
      r.err,
      new RegExp(`^error: ${out}/mimic/files/\\S+\\.(jpg|png): cannot write: EFBIG`),
      r.err,
    );
    const path = /^error: (\S+): cannot write/.exec(r.err)![1]!;
    assert.not.ok(existsSync(path), `the partial ${path} was removed`);
  }
});

test.run();
