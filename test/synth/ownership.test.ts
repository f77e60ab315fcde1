/**
 * synth writes where the real datasets go (out/<dataset>/, out/chexmask/<CheXmask file>): it replaces
 * only what it wrote itself, unless forced. And its seeds are 32-bit: each one its own data set.
 */
import { spawn, spawnSync } from 'node:child_process';
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

test("only the marker in the tree proves it synth's: a stale synth-summary.json beside real data proves nothing", async () => {
  const out = tempDir();
  await synthesize({ out, seed: 1, ...small });
  // the user replaces synth's tree and CSV with the real downloads; synth-summary.json still names mimic
  rmSync(join(out, 'mimic'), { recursive: true });
  rmSync(join(out, 'chexmask'), { recursive: true });
  mkdirSync(join(out, 'mimic', 'files'), { recursive: true });
  mkdirSync(join(out, 'chexmask'));
  const real = join(out, 'mimic', 'files', 'REAL.jpg');
  const csv = join(out, 'chexmask', 'MIMIC-CXR-JPG.csv');
  writeFileSync(real, 'real image');
  writeFileSync(csv, 'real chexmask csv');
  assert.is(JSON.parse(readFileSync(join(out, 'synth-summary.json'), 'utf8')).dataset, 'mimic');
  await rejects(
    synthesize({ out, seed: 1, ...small }),
    /mimic exists and was not written by cxrmask synth \(it has no \.cxrmask-synth\.json; a tree an older synth wrote has none either and must be replaced by force once\); .*MIMIC-CXR-JPG\.csv exists and was not written/,
  );
  assert.is(readFileSync(real, 'utf8'), 'real image');
  assert.is(readFileSync(csv, 'utf8'), 'real chexmask csv');
  // the real tree keeps only the CSV synth did not write: refused alone
  rmSync(join(out, 'mimic'), { recursive: true });
  const e = await rejects(synthesize({ out, seed: 1, ...small }), /MIMIC-CXR-JPG\.csv exists and was not/);
  assert.not.match(e.message, /mimic exists/);
  assert.is(readFileSync(csv, 'utf8'), 'real chexmask csv');
});

test('a tree an older synth wrote (no marker) is refused once, whatever the summary says; --force replaces it', async () => {
  const out = tempDir();
  const s = await synthesize({ out, seed: 1, ...small });
  rmSync(join(s.mimicRoot, SYNTH_MARKER));
  await rejects(synthesize({ out, seed: 2, ...small }), /mimic exists and was not written by cxrmask synth/);
  assert.ok(existsSync(join(s.mimicRoot, s.images[0]!.path)), 'left as it was');
  await synthesize({ out, seed: 2, ...small, force: true });
  await synthesize({ out, seed: 3, ...small }); // marked again: its own from now on
  // a marker that is not one (a folder in its place) proves nothing either
  rmSync(join(s.mimicRoot, SYNTH_MARKER));
  mkdirSync(join(s.mimicRoot, SYNTH_MARKER));
  await rejects(synthesize({ out, seed: 2, ...small }), /mimic exists and was not written by cxrmask synth/);
});

test('a marker saved with a byte-order mark still counts (the io.ts reader)', async () => {
  const out = tempDir();
  const s = await synthesize({ out, seed: 1, ...small });
  const marker = join(s.mimicRoot, SYNTH_MARKER);
  writeFileSync(marker, `\ufeff${readFileSync(marker, 'utf8')}`);
  rmSync(join(out, 'synth-summary.json')); // the marker alone decides
  await synthesize({ out, seed: 2, ...small });
});

test('the demo re-synthesizes over its own marked tree; its stamp beside an unmarked tree proves nothing', async () => {
  const dir = tempDir();
  const a = await ensureDemoData(dir, 3, 1);
  assert.is(a.reused, false);
  assert.is((await ensureDemoData(dir, 3, 1)).reused, true);
  // other sizes (or a changed generator): synthesized again over the demo's own tree and CSV
  mkdirSync(join(dir, 'cache-224'));
  const b = await ensureDemoData(dir, 4, 1);
  assert.is(b.reused, false);
  assert.not.ok(existsSync(join(dir, 'cache-224')), 'the stale cache goes');
  // real data put in place of the demo's tree, with the stamp still there (and asking for new data)
  rmSync(join(dir, 'mimic'), { recursive: true });
  mkdirSync(join(dir, 'mimic'));
  writeFileSync(join(dir, 'mimic', 'unmarked'), 'x');
  mkdirSync(join(dir, 'cache-224'));
  await rejects(
    ensureDemoData(dir, 5, 1),
    /mimic exists and was not written by cxrmask synth .*Choose another --data folder/,
  );
  assert.is(readFileSync(join(dir, 'mimic', 'unmarked'), 'utf8'), 'x');
  assert.ok(existsSync(join(dir, 'cache-224')), 'a refusal deletes nothing');
  assert.ok(existsSync(join(dir, 'synth.json')));
});

test("the demo's stamp as a FIFO or truncated is refused naming it, with the way out (a FIFO used to hang the demo)", async () => {
  const dir = tempDir();
  const stamp = join(dir, 'synth.json');
  spawnSync('mkfifo', [stamp]);
  // a writer at the other end, so that a read of the FIFO returns instead of blocking this test
  const writer = spawn('sh', ['-c', 'printf "{}" > "$0"', stamp], { stdio: 'ignore' });
  try {
    await rejects(
      ensureDemoData(dir, 3, 1),
      new RegExp(
        `^${stamp}: not a regular file \\(a FIFO\\); refusing to read it \\(the demo's stamp: delete it to synthesize the data again\\)$`,
      ),
    );
  } finally {
    writer.kill();
  }
  rmSync(stamp);
  writeFileSync(stamp, '{"params": ');
  const err = await rejects(
    ensureDemoData(dir, 3, 1),
    new RegExp(
      `^${stamp}: cannot read: .*JSON.*\\(the demo's stamp: delete it to synthesize the data again\\)$`,
    ),
  );
  assert.is(err.name, 'DataError');
  // a stamp that records no data (another version's): synthesized again, as for other parameters
  writeFileSync(stamp, '{}');
  assert.is((await ensureDemoData(dir, 3, 1)).reused, false);
  assert.is((await ensureDemoData(dir, 3, 1)).reused, true);
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
