/** CheXmask rows with blank Height/Width (PadChest): the size comes from the image, after checking that the masks fit it. */

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { joinChexmask, parseChexmaskRecord, sizeRowFromImage } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { buildCache } from '../../ts/images/cache-build.js';

import { renderFigure } from '../../ts/report/figure.js';
import { synthTree, tempDir } from './helpers.js';

/** The synthetic CheXmask CSV with Height/Width blanked (and ImageID as the id column, as PadChest's file). */
function blanked(csv: string, out: string): string {
  // records end in ",Height,Width"; the numpy-form landmark cells span lines but end in "]"
  const text = readFileSync(csv, 'utf8');
  const rows = text.match(/,\d+,\d+\n/g)?.length ?? 0;
  assert.ok(rows > 10);
  writeFileSync(out, text.replace(/^dicom_id/, 'ImageID').replace(/,\d+,\d+\n/g, ',,\n'));
  return out;
}

test('blank Height/Width: joined with ImageID detected from the header, sized from the image, same cache as sized rows', async () => {
  const s = await synthTree();
  const d = tempDir();
  const csv = blanked(s.chexmaskCsv, join(d, 'Padchest.csv'));
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const j = await joinChexmask(
    csv,
    entries.map((e) => e.dicomId),
  );
  assert.is(j.summary.idColumn, 'ImageID');
  const sized = await joinChexmask(
    s.chexmaskCsv,
    entries.map((e) => e.dicomId),
  );
  assert.is(j.summary.kept, sized.summary.kept);
  const one = [...j.rows.values()][0];
  assert.equal([one.height, one.width], [0, 0]);
  assert.ok(one.sizeFromImage && one.sizeFromImage.rleEnd > 0);
  const a = await buildCache({
    entries,
    root: s.mimicRoot,
    chexmask: csv,
    out: join(d, 'a'),
    preprocess: { size: 32 },
  });
  const b = await buildCache({
    entries,
    root: s.mimicRoot,
    chexmask: s.chexmaskCsv,
    out: join(d, 'b'),
    preprocess: { size: 32 },
  });
  assert.is(a.cached, b.cached);
  assert.equal(a.skipped.counts, b.skipped.counts);
  for (const f of readdirSync(b.dir).filter((x) => x.endsWith('.bin')))
    assert.ok(readFileSync(join(a.dir, f)).equals(readFileSync(join(b.dir, f))), f);
});

test('blank Height/Width: the overlay figure takes the image size too (same figure as the sized row)', async () => {
  const s = await synthTree();
  const d = tempDir();
  const csv = blanked(s.chexmaskCsv, join(d, 'Padchest.csv'));
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const ids = entries.map((e) => e.dicomId);
  const blank = await joinChexmask(csv, ids);
  const sized = await joinChexmask(s.chexmaskCsv, ids);
  const e = entries.find((x) => blank.rows.has(x.dicomId));
  assert.ok(e);
  const file = join(s.mimicRoot, e.path);
  for (const grid of ['full', 'preprocessed'] as const) {
    const a = await renderFigure(file, blank.rows.get(e.dicomId)!, { grid });
    const b = await renderFigure(file, sized.rows.get(e.dicomId)!, { grid });
    assert.ok(a.data.equals(b.data), grid);
  }
});

test('blank Height/Width: an RLE run past the image is refused at the image, naming it', async () => {
  const s = await synthTree();
  const im = s.images.find((x) => x.chexmask === 'ok');
  assert.ok(im);
  const rec = {
    ImageID: im.dicomId,
    'Dice RCA (Mean)': '0.9',
    'Dice RCA (Max)': '0.9',
    Landmarks: '[[10, 10]' + ', [10, 10]'.repeat(119) + ']',
    'Left Lung': `${im.width * im.height - 5} 10`,
    'Right Lung': '',
    Heart: '',
    Height: '',
    Width: '',
  };
  const row = parseChexmaskRecord(rec);
  assert.equal(row.sizeFromImage, { rleEnd: im.width * im.height + 4 });
  assert.throws(
    () => sizeRowFromImage(row, im.width, im.height, 'x.png'),
    (e: Error) =>
      /x\.png, id .*field "Height\/Width": Height\/Width are blank and an RLE run ends at pixel/.test(
        e.message,
      ),
  );
  const fits = sizeRowFromImage(row, im.width + 1, im.height, 'x.png');
  assert.equal([fits.width, fits.height, fits.sizeFromImage], [im.width + 1, im.height, undefined]);
  // one blank and one given: still an error, as before
  assert.throws(() => parseChexmaskRecord({ ...rec, Height: '100' }), /field "Width"/);
});

test.run();
