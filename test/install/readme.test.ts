/**
 * Examples cannot rot: README's JavaScript blocks run as written (from a project folder with the paths
 * they name), every `npx cxrmask …` line of its shell blocks names a command and flags that exist, and
 * examples/*.mjs run against synthetic data and a served CLI.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildCli } from '../../ts/cli/main.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { startServe } from '../cli/helpers.js';
import { MODEL_DIR, ROOT } from '../native/helpers.js';
import { firstJpeg, trainedSegmenterFolder } from './helpers.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = (lang: RegExp) =>
  [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)].filter((m) => lang.test(m[1]!)).map((m) => m[2]!);

let ws = '';
let jpeg = '';
let data = '';
test.before(async () => {
  ws = mkdtempSync(join(tmpdir(), 'cxrmask-readme-'));
  // The project folder a README reader has: the package, models/tiny, the demo's trained segmenter.
  mkdirSync(join(ws, 'node_modules'));
  symlinkSync(ROOT, join(ws, 'node_modules', 'cxrmask'));
  mkdirSync(join(ws, 'models'));
  symlinkSync(MODEL_DIR, join(ws, 'models', 'tiny'));
  await trainedSegmenterFolder(join(ws, '.cache', 'demo-data', 'segmenter'));
  data = join(ws, '.cache', 'example-data');
  const s = await synthesize({ out: data, n: 24, seed: 3, width: 256, height: 256 });
  jpeg = firstJpeg(s.mimicRoot);
  symlinkSync(jpeg, join(ws, 'x.jpg'));
});
test.after(() => rmSync(ws, { recursive: true, force: true }));

test('README: every js block runs as written from a project folder', () => {
  const js = blocks(/^(js|javascript|mjs)$/);
  assert.ok(js.length >= 1, 'README has no js block');
  js.forEach((code, i) => {
    const file = join(ws, `readme-${i}.mjs`);
    writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], {
      cwd: ws,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    assert.is(r.status, 0, `README js block ${i} failed:\n${code}\n${r.stderr}`);
    if (/openSegmenter/.test(code)) {
      // The library example prints maskSource then the per-finding probabilities.
      assert.match(r.stdout, /^segmenter /, `block ${i} did not use the segmenter:\n${r.stdout}`);
      assert.match(r.stdout, /Cardiomegaly: 0\.\d+/, r.stdout);
    }
  });
});

/** `--help` text of a command path, captured in-process. */
async function helpOf(path: string[]): Promise<string> {
  const cli = (await buildCli([...path, '--help'])).exitProcess(false);
  return new Promise((ok) => {
    cli.parse([...path, '--help'], {}, (_err: unknown, _argv: unknown, output: string) => ok(output));
  });
}

test('README: each `npx cxrmask …` line names a command and flags it has', async () => {
  const lines = blocks(/^(bash|sh|shell)$/)
    .flatMap((b) => b.replace(/\\\n\s*/g, ' ').split('\n'))
    .map((l) => l.trim())
    .filter((l) => l.startsWith('npx cxrmask '));
  assert.ok(lines.length >= 10, `only ${lines.length} cxrmask lines found`);
  const top = await helpOf([]);
  for (const line of lines) {
    const words = line.replace(/#.*$/, '').split(/\s+/).slice(2);
    const path: string[] = [];
    for (const w of words) {
      if (!/^[a-z][a-z-]*$/.test(w)) break;
      path.push(w);
    }
    assert.ok(path.length > 0, line);
    assert.match(
      top,
      new RegExp(`cxrmask ${path[0]}\\b`),
      `README names a command that does not exist: ${line}`,
    );
    const help = await helpOf(path.slice(0, 1));
    for (const flag of line.replace(/#.*$/, '').match(/--[a-z][a-z0-9-]*/g) ?? []) {
      const name = flag.replace(/^--no-/, '--');
      assert.ok(help.includes(name), `${line}: ${path[0]} has no ${flag}`);
    }
  }
});

test('README: the synth → index → cache → zeroshot lines run as written, one after the other', () => {
  const shell = blocks(/^(bash|sh|shell)$/).flatMap((b) => b.split('\n'));
  const line = (re: RegExp) => {
    const l = shell.find((x) => re.test(x));
    assert.ok(l, `README has no line matching ${re}`);
    // optional [--flags] are left out; 40 images instead of 500 keep it quick
    return l!
      .replace(/#.*$/, '')
      .replace(/\[[^\]]*\]/g, '')
      .replace(/--n \d+/, '--n 40')
      .trim()
      .split(/\s+/)
      .slice(2);
  };
  const steps = [
    line(/^npx cxrmask synth /),
    line(/^npx cxrmask index --root D\/mimic/),
    [...line(/^npx cxrmask cache --index D\/idx/), '--no-progress'],
    [...line(/^npx cxrmask zeroshot --cache D\/cache/), '--no-progress', '--device', 'cpu'],
  ];
  const cwd = join(ws, 'cli-sequence');
  mkdirSync(join(cwd, 'models'), { recursive: true });
  symlinkSync(MODEL_DIR, join(cwd, 'models', 'tiny'));
  // the package's bin (what `npx cxrmask` runs in a project that installed it)
  const cli = join(ws, 'node_modules', 'cxrmask', 'bin', 'cxrmask.mjs');
  for (const args of steps) {
    const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', timeout: 300_000 });
    assert.is(r.status, 0, `npx cxrmask ${args.join(' ')} failed:\n${r.stderr}`);
  }
});

test('examples/predict-batch.mjs scores synthetic images original → masked', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'examples', 'predict-batch.mjs'), data], {
    cwd: ws,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.is(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n');
  assert.is(rows.length, 4, r.stdout);
  for (const row of rows) assert.match(row, /Atelectasis: 0\.\d{3} → 0\.\d{3}/);
});

test('examples/predict-service.mjs: no image, a missing file or no server is one line and an exit code', async () => {
  const script = join(ROOT, 'examples', 'predict-service.mjs');
  const run = (args: string[]) =>
    spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 30_000 });
  // a port nothing listens on: one that was free a moment ago
  const closed = await new Promise<number>((ok) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => ok(port));
    });
  });
  const url = `http://127.0.0.1:${closed}`;
  const none = run([]);
  assert.is(none.status, 2, none.stderr);
  assert.match(none.stderr, /^usage: node examples\/predict-service\.mjs .*\n$/);
  const missing = run(['--url', url, join(ws, 'nope.jpg')]);
  assert.is(missing.status, 1, missing.stderr);
  assert.is(missing.stderr, `${join(ws, 'nope.jpg')}: cannot read (ENOENT)\n`);
  const down = run(['--url', url, jpeg]);
  assert.is(down.status, 1, down.stderr);
  assert.is(down.stderr, `${url}: cannot reach the service (ECONNREFUSED); is \`cxrmask serve\` running?\n`);
});

test('examples/predict-service.mjs against `cxrmask serve` with the trained segmenter', async () => {
  // the package's bin, as a project that installed cxrmask runs it
  const cli = join(ws, 'node_modules', 'cxrmask', 'bin', 'cxrmask.mjs');
  const args = [cli, 'serve', '--model', 'models/tiny', '--segmenter', '.cache/demo-data/segmenter'];
  const s = await startServe(
    process.execPath,
    [...args, '--port', '0', '--device', 'cpu', '--log', 'error'],
    {
      cwd: ws,
    },
  );
  try {
    const overlays = join(ws, 'overlays');
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'examples', 'predict-service.mjs'), '--url', s.url, '--overlays', overlays, jpeg],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.is(r.status, 0, `${r.stderr}\n${s.stderr()}`);
    assert.match(r.stdout, /masks: segmenter/);
    assert.match(r.stdout, /Pleural Effusion\s+0\.\d{3}\s+0\.\d{3}\s+[+-]0\.\d{3}/);
    assert.ok(existsSync(join(overlays, `${jpeg.replace(/^.*\//, '').replace(/\.jpg$/, '')}-overlay.png`)));
  } finally {
    s.child.kill('SIGTERM');
  }
});

test.run();
