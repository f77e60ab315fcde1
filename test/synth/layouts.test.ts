/** `synth --dataset X` writes each dataset's layout, and its adapter, join and cache take it end to end. */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildDatasetIndex } from '../../ts/data/datasets/registry.js';
import { buildCache } from '../../ts/images/cache-build.js';

import { isDicom } from '../../ts/images/dicom.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { tempDir } from '../data/helpers.js';

for (const dataset of ['chexpert', 'padchest', 'vindr'] as const) {
  test(`synth --dataset ${dataset}: indexed by its adapter, joined on its id column, every good row cached`, async () => {
    const d = tempDir(`cxrmask-synth-${dataset}-`);
    const s = await synthesize({ out: d, dataset, n: 36, seed: 4, width: 96, height: 112 });
    assert.is(s.mimicRoot, join(d, dataset));
    const { entries, summary } = await buildDatasetIndex({
      dataset,
      root: s.mimicRoot,
      ...(dataset === 'padchest' ? {} : { validateFraction: 0.2 }),
    });
    const frontal = s.images.filter((im) => ['PA', 'AP'].includes(im.view));
    assert.is(entries.length, frontal.length, JSON.stringify(summary.dropped.counts));
    assert.equal(summary.duplicates.counts, {});
    assert.ok(summary.perSplit.train > 0, JSON.stringify(summary.perSplit));
    const file = readFileSync(join(s.mimicRoot, entries[0].path));
    if (dataset === 'vindr') assert.ok(isDicom(file));
    if (dataset === 'padchest') assert.is((await sharp(file).metadata()).depth, 'ushort');
    const c = await buildCache({
      entries,
      root: s.mimicRoot,
      chexmask: s.chexmaskCsv,
      out: join(d, 'cache'),
      preprocess: { size: 32 },
    });
    const good = s.images.filter((im) => im.chexmask === 'ok').length;
    assert.is(c.cached, good, JSON.stringify(c.skipped));
  });
}

test('synth --dataset vindr: three readers, majority and any-reader rules differ, test rows are consensus', async () => {
  const d = tempDir('cxrmask-synth-vindr-rule-');
  const s = await synthesize({ out: d, dataset: 'vindr', n: 60, seed: 9, width: 64, height: 64 });
  const maj = await buildDatasetIndex({ dataset: 'vindr', root: s.mimicRoot, checkFiles: false });
  const any = await buildDatasetIndex({
    dataset: 'vindr',
    root: s.mimicRoot,
    checkFiles: false,
    readerRule: 'any',
  });
  const shownPos = s.images.reduce((a, im) => a + im.shown.filter(Boolean).length, 0);
  const pos = (x: typeof maj) => Object.values(x.summary.perLabel).reduce((a, l) => a + l.positive, 0);
  // the majority of three readers is what the phantom shows; "any" adds reader 3's false marks
  assert.is(pos(maj), shownPos);
  assert.ok(pos(any) > pos(maj));
});

test.run();
