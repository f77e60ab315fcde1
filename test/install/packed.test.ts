/**
 * The dependency path a Node service takes: `npm pack` this clone, `npm install` the tarball into an
 * empty project (dependencies from the registry, --engine-strict), export `tiny` through the installed
 * bin, `predict` and `serve` (/healthz, one /predict) through it, and import the library from the
 * project. The install runs with CXRMASK_SKIP_BUILD=1 and the clone's built addon and build stamp are
 * copied in; `cxrmask setup` must then find LibTorch and judge that addon current (the install step's
 * discovery, stamp and env.json, without a second 10-minute compile). CXRMASK_TEST_PACKED_BUILD=1
 * makes the install build the addon for real (cmake-js inside node_modules/cxrmask).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FINDINGS } from '../../ts/index.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { startServe } from '../cli/helpers.js';
import { ROOT } from '../native/helpers.js';
import { firstJpeg } from './helpers.js';

const realBuild = process.env['CXRMASK_TEST_PACKED_BUILD'] === '1';
let app = '';
let jpeg = '';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-packed-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeout = 600_000): string {
  const r = spawnSync(cmd, args, { cwd: app, encoding: 'utf8', env: { ...process.env, ...env }, timeout });
  assert.is(
    r.status,
    0,
    `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`,
  );
  return r.stdout;
}

test('npm pack + npm install --engine-strict of the tarball into an empty project', async () => {
  const packDir = join(tmp, 'pack');
  mkdirSync(packDir);
  const packed = JSON.parse(
    execFileSync(npm, ['pack', '--json', '--pack-destination', packDir], { cwd: ROOT, encoding: 'utf8' }),
  ) as { filename: string; files: { path: string }[] }[];
  const files = packed[0]!.files.map((f) => f.path);
  for (const want of [
    'dist/index.js',
    'dist/cli/main.js',
    'scripts/install.mjs',
    'tools/export_biomedclip.py',
    'tools/segmenter_export.py',
    'tools/export_staging.py',
    'tools/requirements.txt',
    'CMakeLists.txt',
    'native/addon.cc',
  ])
    assert.ok(files.includes(want), `the tarball lacks ${want}`);
  assert.not.ok(
    files.some((f) => f.startsWith('test/') || f.startsWith('build/') || f.startsWith('models/')),
  );
  // the licence, the Node-version-checking bin, and what README links to, inside node_modules/cxrmask
  for (const want of [
    'LICENSE',
    'bin/cxrmask.mjs',
    'scripts/node-version.mjs',
    'examples/predict-batch.mjs',
    'examples/predict-service.mjs',
    'docs/experiments.md',
  ])
    assert.ok(files.includes(want), `the tarball lacks ${want}`);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const linked = [...readme.matchAll(/\]\(((?:docs|examples)\/[^)#\s]+)/g)].map((m) => m[1]!);
  assert.ok(linked.length >= 5, `README links: ${linked.join(', ')}`);
  // docs/api/ (171 generated pages) stays in the repository: dist/*.d.ts carry the same doc comments
  for (const l of linked.filter((l) => !l.startsWith('docs/api/')))
    assert.ok(files.includes(l), `README links ${l}, not in the tarball`);
  for (const f of readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')))
    assert.ok(files.includes(`docs/${f}`), `the tarball lacks docs/${f}`);
  // source maps carry their sources: ts/ is not shipped
  const map = JSON.parse(readFileSync(join(ROOT, 'dist', 'index.js.map'), 'utf8')) as {
    sourcesContent?: string[];
  };
  assert.ok(map.sourcesContent?.[0]?.includes('export'), 'dist/index.js.map has no sourcesContent');
  assert.not.ok(files.some((f) => f.startsWith('ts/')));

  app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'svc', version: '1.0.0', private: true, type: 'module' }),
  );
  const env = realBuild ? {} : { CXRMASK_SKIP_BUILD: '1' };
  run(
    npm,
    ['install', '--engine-strict', '--no-audit', '--no-fund', join(packDir, packed[0]!.filename)],
    env,
  );
  const pkg = join(app, 'node_modules', 'cxrmask');
  assert.ok(existsSync(join(pkg, 'dist', 'index.js')));
  if (!realBuild) {
    mkdirSync(join(pkg, 'build', 'Release'), { recursive: true });
    copyFileSync(
      join(ROOT, 'build', 'Release', 'cxrmask_native.node'),
      join(pkg, 'build', 'Release', 'cxrmask_native.node'),
    );
    copyFileSync(join(ROOT, 'build', 'native.stamp'), join(pkg, 'build', 'native.stamp'));
  }
  // The install step again, through the installed bin: LibTorch found, the addon judged current.
  const r = spawnSync(join(app, 'node_modules', '.bin', 'cxrmask'), ['setup'], {
    cwd: app,
    encoding: 'utf8',
    env: { ...process.env, CXRMASK_FORCE_VENV: '1' },
  });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /native addon up to date/);
  const env2 = JSON.parse(readFileSync(join(pkg, 'build', 'env.json'), 'utf8')) as { python: string };
  assert.ok(existsSync(env2.python), 'build/env.json names no Python');
});

test('export tiny through the installed bin, then predict', async () => {
  const bin = join(app, 'node_modules', '.bin', 'cxrmask');
  run(bin, ['export', '--random-init', 'tiny', '--out', 'models/tiny']);
  for (const f of ['model.json', 'clip.pt', 'tokenizer.json'])
    assert.ok(existsSync(join(app, 'models', 'tiny', f)), f);
  const s = await synthesize({ out: join(tmp, 'data'), n: 6, seed: 5, width: 256, height: 256 });
  jpeg = firstJpeg(s.mimicRoot);
  const out = JSON.parse(run(bin, ['predict', jpeg, '--model', 'models/tiny', '--device', 'cpu', '--json']));
  assert.is(out.kind, 'zeroshot');
  for (const f of FINDINGS) assert.ok(out.original[f] > 0 && out.original[f] < 1, `${f}: ${out.original[f]}`);
  // An untrained segmenter export from the package is refused without --allow-untrained.
  run(bin, ['export', '--segmenter', 'unet-tiny', '--out', 'models/seg-tiny']);
  const refused = spawnSync(
    bin,
    ['predict', jpeg, '--model', 'models/tiny', '--segmenter', 'models/seg-tiny'],
    {
      cwd: app,
      encoding: 'utf8',
    },
  );
  assert.is(refused.status, 2, refused.stderr);
  assert.match(refused.stderr, /never trained/);
});

test('serve through the installed bin: /healthz and one /predict', async () => {
  const bin = join(app, 'node_modules', '.bin', 'cxrmask');
  const s = await startServe(
    bin,
    ['serve', '--model', 'models/tiny', '--device', 'cpu', '--port', '0', '--log', 'error'],
    { cwd: app },
  );
  try {
    const h = await fetch(`${s.url}/healthz`);
    assert.is(h.status, 200);
    const p = await fetch(`${s.url}/predict`, { method: 'POST', body: readFileSync(jpeg) });
    const body = (await p.json()) as { original: Record<string, number> };
    assert.is(p.status, 200, JSON.stringify(body));
    assert.equal(Object.keys(body.original).sort(), [...FINDINGS].sort());
  } finally {
    s.child.kill('SIGTERM');
  }
});

test('the library imports from the project and predicts', () => {
  writeFileSync(
    join(app, 'use.mjs'),
    [
      "import { MaskingPredictor, openSegmenter, diagnostics } from 'cxrmask';",
      "if (typeof openSegmenter !== 'function') throw new Error('openSegmenter is not exported');",
      "const p = await MaskingPredictor.load({ modelDir: 'models/tiny', device: 'cpu' });",
      'const r = await p.predict(process.argv[2]);',
      'await p.dispose();',
      'console.log(JSON.stringify({ torch: diagnostics().torch.version, original: r.original }));',
    ].join('\n'),
  );
  const out = JSON.parse(run(process.execPath, ['use.mjs', jpeg]));
  assert.match(out.torch, /^2\.11/);
  assert.is(Object.keys(out.original).length, FINDINGS.length);
});

test.run();
