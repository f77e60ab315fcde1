/**
 * `cxrmask cache` → `cxrmask segmenter eval`: the cache records the CheXmask CSV it joined (absolute),
 * so eval shows CheXmask's own Dice RCA next to its Dice without --chexmask; eval.json names the
 * weights it measured and their digest (eval --weights X overwrites it in place).
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sha256File } from '../../ts/common/hash.js';
import { Segmenter } from '../../ts/model/segmenter.js';
import { tempDir } from '../data/helpers.js';
import { runCli, smallSynthArgs } from './helpers.js';

const SEG = join(process.cwd(), 'models', 'seg-tiny');

test('segmenter eval on a `cxrmask cache` cache: Dice RCA from the recorded CSV; eval.json names the weights', async () => {
  if (!existsSync(join(SEG, 'seg.pt'))) throw new Error(`${SEG} missing: run scripts/setup.sh`);
  const d = tempDir();
  const ok = (args: string[]) => {
    const r = runCli(args);
    assert.is(r.code, 0, `${args[0]}: ${r.err}`);
    return r;
  };
  ok(smallSynthArgs(d));
  ok(['index', '--root', join(d, 'mimic'), '--out', join(d, 'idx')]);
  const csv = join(d, 'chexmask', 'MIMIC-CXR-JPG.csv');
  // given relative to the working folder: recorded absolute, since eval may run from elsewhere
  const c = ok([
    'cache',
    '--index',
    join(d, 'idx'),
    '--root',
    join(d, 'mimic'),
    '--chexmask',
    relative(process.cwd(), csv),
    '--out',
    join(d, 'cache'),
    '--no-progress',
  ]);
  const cacheDir = JSON.parse(c.out).dir as string;
  const meta = JSON.parse(readFileSync(join(cacheDir, 'cache.json'), 'utf8'));
  assert.is(meta.build.chexmask, csv);

  const seg = await Segmenter.load(SEG, { device: 'cpu' });
  const weights = join(d, 'other.pt');
  await seg.save(weights);
  await seg.dispose();
  const out = join(d, 'seg');
  const evalArgs = (w: string) => [
    'segmenter',
    'eval',
    '--cache',
    cacheDir,
    '--model',
    SEG,
    '--out',
    out,
    '--weights',
    w,
    '--split',
    'train',
    '--device',
    'cpu',
    '--no-progress',
  ];
  const e = ok([...evalArgs(relative(process.cwd(), weights)), '--batch-size', '8']);
  assert.match(e.out, /CheXmask's own Dice RCA \(Mean\) on these images: \d\.\d{3} \(sd /);
  const report = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8'));
  assert.is(report.chexmaskDiceRca.csv, csv);
  assert.is(report.chexmaskDiceRca.n, report.images);
  assert.is(report.weights, weights);
  assert.is(report.weightsSha256, sha256File(weights).slice(0, 16));
  assert.match(report.weightsSha256, /^[0-9a-f]{16}$/);

  // the CSV moved away after caching (the cache no longer needs it): eval still writes its report,
  // without the RCA and saying why; a CSV named with --chexmask is read strictly
  renameSync(csv, `${csv}.moved`);
  const moved = ok([...evalArgs(weights), '--batch-size', '8']);
  assert.match(
    moved.out,
    /Dice RCA: not shown, the CSV cache\.json records is gone \(.*MIMIC-CXR-JPG\.csv\); pass --chexmask/,
  );
  const again = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8'));
  assert.is(again.chexmaskDiceRca, null);
  assert.is(again.chexmaskCsvMissing, csv);
  const strict = runCli([...evalArgs(weights), '--chexmask', csv]);
  assert.is(strict.code, 2);
  assert.match(strict.err, /MIMIC-CXR-JPG\.csv/);
});

test.run();
