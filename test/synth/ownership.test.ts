/**
 * synth writes where the real datasets go (out/<dataset>/, out/chexmask/<CheXmask file>): it replaces
 * only what it wrote itself, unless forced. And its seeds are 32-bit: each one its own data set.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureDemoData } from '../../ts/cli/demo.js';
import { SYNTH_MARKER } from '../../ts/synth/ownership.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { runCli } from '../cli/helpers.js';
import { rejects, tempDir } from '../data/helpers.js';

const small = { n: 3, width: 64, height: 64 };

test('a dataset tree synth did not write is refused, named, and left as it was; --force replaces it', async () => {
  const out = tempDir();
  const precious = join(out, 'padchest', 'images', '000001.png');
  mkdirSync(join(out, 'padchest', 'images'), { recursive: true });
  writeFileSync(precious, 'precious');
  const args = [
    'synth',
    '--dataset',
    'padchest',
    '--out',
    out,
    '--n',
    '3',
    '--width',
    '64',
    '--height',
    '64',
  ];
  const r = runCli([...args, '--no-progress']);
  assert.is(r.code, 2, r.err);
  assert.match(
    r.err,
    `error: synth would delete or overwrite what it did not write: ${join(out, 'padchest')} exists`,
  );
  assert.match(r.err, /--force/);
  assert.is(readFileSync(precious, 'utf8'), 'precious');
  assert.not.ok(existsSync(join(out, 'chexmask')), 'nothing written before the refusal');
  const f = runCli([...args, '--no-progress', '--force']);
  assert.is(f.code, 0, f.err);
  assert.not.ok(existsSync(precious));
  assert.ok(existsSync(join(out, 'padchest', SYNTH_MARKER)));
});

test('a CheXmask CSV synth did not write is refused, even beside synth trees; one it wrote is replaced', async () => {
  const out = tempDir();
  mkdirSync(join(out, 'chexmask'));
  const real = join(out, 'chexmask', 'ChestX-Ray8.csv');
  writeFileSync(real, 'REAL CheXmask\n');
  await rejects(
    synthesize({ out, dataset: 'nih14', seed: 1, ...small }),
    new RegExp(`${real.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} exists and was not written by cxrmask synth`),
  );
  assert.is(readFileSync(real, 'utf8'), 'REAL CheXmask\n');
  assert.not.ok(existsSync(join(out, 'nih14')), 'the tree is not touched either');
  // synth's own output is rerun over (another seed, another layout beside it)
  rmSync(real);
  const a = await synthesize({ out, dataset: 'nih14', seed: 1, ...small });
  await synthesize({ out, dataset: 'mimic', seed: 1, ...small });
  const b = await synthesize({ out, dataset: 'nih14', seed: 2, ...small });
  assert.is(b.chexmaskCsv, a.chexmaskCsv);
  // the synthetic CSV replaced by the real one (same path): refused again
  writeFileSync(real, 'REAL CheXmask\n');
  await rejects(
    synthesize({ out, dataset: 'nih14', seed: 1, ...small }),
    /ChestX-Ray8\.csv exists and was not/,
  );
  await synthesize({ out, dataset: 'nih14', seed: 1, ...small, force: true });
  assert.match(readFileSync(real, 'utf8'), /^Image Index,/);
});

test('trees synth wrote before it marked them (out/synth-summary.json names the dataset) are still its own', async () => {
  const out = tempDir();
  const s = await synthesize({ out, seed: 1, ...small });
  rmSync(join(s.mimicRoot, SYNTH_MARKER));
  await synthesize({ out, seed: 2, ...small });
  rmSync(join(s.mimicRoot, SYNTH_MARKER));
  writeFileSync(join(out, 'synth-summary.json'), JSON.stringify({ dataset: 'nih14' }));
  await rejects(synthesize({ out, seed: 2, ...small }), /mimic exists and was not written by cxrmask synth/);
});

test('the demo re-synthesizes in a folder with its stamp (its own), and refuses a folder without one', async () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'mimic'));
  writeFileSync(join(dir, 'mimic', 'unmarked'), 'x');
  await rejects(ensureDemoData(dir, 3, 1), /mimic exists and was not written by cxrmask synth/);
  writeFileSync(join(dir, 'synth.json'), JSON.stringify({ params: {} }));
  const d = await ensureDemoData(dir, 3, 1);
  assert.is(d.reused, false);
  assert.ok(existsSync(join(d.mimicRoot, SYNTH_MARKER)));
});

test('seeds: 0 to 2^32-1, each its own data (seeds above ~3.4 million used to share streams)', async () => {
  await rejects(synthesize({ out: tempDir(), seed: -3, ...small }), /seed/);
  await rejects(synthesize({ out: tempDir(), seed: 2 ** 32, ...small }), /seed/);
  const r = runCli(['synth', '--out', tempDir(), '--n', '3', '--seed', '-3', '--no-progress']);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /seed: must be an integer from 0 to 4294967295, got -3/);
  // these two gave byte-identical trees when the seed was multiplied in floating point
  const a = await synthesize({ out: tempDir(), seed: 4294967293, ...small });
  const b = await synthesize({ out: tempDir(), seed: 4294602504, ...small });
  assert.is.not(readFileSync(a.chexmaskCsv, 'utf8'), readFileSync(b.chexmaskCsv, 'utf8'));
  assert.not.ok(
    readFileSync(join(a.mimicRoot, a.images[0]!.path)).equals(
      readFileSync(join(b.mimicRoot, b.images[0]!.path)),
    ),
  );
});

test.run();
