/** VinDr-CXR adapter: Kaggle VinBigData's real train.csv (67,914 box rows, from the torchxrayvision wheel), and the PhysioNet layout. */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildDatasetIndex } from '../../ts/data/datasets/registry.js';
import { rejects, tempDir } from './helpers.js';
import { realTables, realTablesMissing, TABLES } from './real-tables.js';

const tables = realTables();

if (tables) {
  test('the real VinBigData train.csv: 15,000 images, 3 readers each, majority and any-reader counts, no Edema', async () => {
    const root = tempDir('cxrmask-vinbig-');
    symlinkSync(join(tables, TABLES.vinbig), join(root, 'train.csv'));
    const maj = await buildDatasetIndex({ dataset: 'vindr', root, checkFiles: false });
    assert.is(maj.summary.metadataRows, 67914);
    assert.is(maj.entries.length, 15000);
    const pos = (s: typeof maj.summary) => Object.values(s.perLabel).map((l) => l.positive);
    assert.equal(pos(maj.summary), [62, 1817, 121, 0, 634]);
    assert.is(maj.summary.perLabel.Edema.ignored, 15000);
    assert.is(maj.summary.perLabel.Cardiomegaly.ignored, 0);
    const any = await buildDatasetIndex({ dataset: 'vindr', root, checkFiles: false, readerRule: 'any' });
    assert.equal(pos(any.summary), [186, 2300, 353, 0, 1032]);
    const sp = maj.summary.perSplit;
    assert.is(sp.train + sp.validate + sp.test, 15000);
    assert.ok(sp.test > 1000 && sp.validate > 1000, JSON.stringify(sp));
    assert.equal(maj.entries[0].path, `train/${maj.entries[0].dicomId}.dicom`);
  });
} else test(realTablesMissing(), () => {});

const HEAD =
  'image_id,rad_id,Aortic enlargement,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural effusion,No finding';
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);

test('PhysioNet layout: wide reads per radiologist, consensus test rows, DICOM paths, missing images counted', async () => {
  const root = tempDir('cxrmask-vindr-');
  mkdirSync(join(root, 'annotations'));
  writeFileSync(
    join(root, 'annotations', 'image_labels_train.csv'),
    [
      HEAD,
      `${A},R1,0,1,1,0,1,0,0`,
      `${A},R2,0,0,1,0,1,0,0`,
      `${A},R3,0,0,0,0,0,0,1`,
      `${A},R3,0,0,0,0,0,0,1`,
      `${B},R4,0,0,0,0,0,0,1`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(root, 'annotations', 'image_labels_test.csv'),
    `image_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural effusion\n${C},0,0,1,0,1\n`,
  );
  for (const [dir, id] of [
    ['train', A],
    ['test', C],
  ]) {
    mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(join(root, dir, `${id}.dicom`), 'x');
  }
  const { entries, summary } = await buildDatasetIndex({ dataset: 'vindr', root, validateFraction: 0 });
  const by = Object.fromEntries(entries.map((e) => [e.dicomId, e]));
  // A: Cardiomegaly and Edema by 2 of 3 readers, Atelectasis by 1 of 3 (majority rule)
  assert.equal(by[A].labels, [0, 1, 0, 1, 0]);
  assert.equal(by[A].path, `train/${A}.dicom`);
  assert.equal([by[C].split, by[C].labels], ['test', [0, 0, 1, 0, 1]]);
  assert.is(by[B], undefined);
  assert.is(summary.dropped.counts['image-missing'], 1);
  assert.equal(summary.duplicates.counts, { [join(root, 'annotations', 'image_labels_train.csv')]: 1 });
  const any = await buildDatasetIndex({ dataset: 'vindr', root, validateFraction: 0, readerRule: 'any' });
  assert.equal(any.entries.find((e) => e.dicomId === A)?.labels, [1, 1, 0, 1, 0]);
  writeFileSync(
    join(root, 'annotations', 'image_labels_train.csv'),
    [HEAD, `${A},R1,0,1,1,0,1,0,0`, `${A},R1,0,0,1,0,1,0,0`, ''].join('\n'),
  );
  await rejects(
    buildDatasetIndex({ dataset: 'vindr', root }),
    /image_labels_train\.csv, row 2, id a+\/R1, field "Atelectasis": rows 1 and 2 both give image_id\/rad_id/,
  );
});

test('PhysioNet layout without image_labels_test.csv: the official split is refused naming that file (it held no test image); --split patient indexes', async () => {
  const root = tempDir('cxrmask-vindr-notest-');
  mkdirSync(join(root, 'annotations'));
  writeFileSync(join(root, 'annotations', 'image_labels_train.csv'), `${HEAD}\n${A},R1,0,1,1,0,1,0,0\n`);
  await rejects(
    buildDatasetIndex({ dataset: 'vindr', root, checkFiles: false }),
    /annotations\/image_labels_test\.csv: the official split's test images are listed there/,
  );
  const { entries } = await buildDatasetIndex({
    dataset: 'vindr',
    root,
    checkFiles: false,
    split: 'patient',
  });
  assert.is(entries.length, 1);
});

const id = (n: number) => n.toString(16).padStart(32, '0');
const KAGGLE_HEAD = 'image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max';

test('Kaggle: a class_name outside the 15, a class_id of another class or a blank rad_id drop the row, naming file, row and field', async () => {
  const root = tempDir('cxrmask-vinbig-bad-');
  const file = join(root, 'train.csv');
  writeFileSync(
    file,
    [
      KAGGLE_HEAD,
      `${id(1)},Cardiomegaly,3,R1,1,1,2,2`,
      `${id(1)},Cardiomegaly,3,R2,1,1,2,2`,
      `${id(1)},No finding,14,R3,,,,`,
      // row 4: lower case; before, the read was taken as "not cardiomegaly"
      `${id(2)},cardiomegaly,3,R1,1,1,2,2`,
      `${id(2)},cardiomegaly,3,R2,1,1,2,2`,
      `${id(2)},No finding,14,R3,,,,`,
      // row 7: NIH/CheXpert's spelling of VinBigData's "Pleural effusion"
      `${id(3)},Pleural Effusion,10,R1,1,1,2,2`,
      `${id(3)},Pleural Effusion,10,R2,1,1,2,2`,
      `${id(3)},Pleural Effusion,10,R3,1,1,2,2`,
      `${id(4)},Cardiomegally,3,R1,1,1,2,2`,
      `${id(4)},,3,R2,1,1,2,2`,
      // row 12: a blank reader counted as one more reader ("") before
      `${id(4)},Cardiomegaly,3,,1,1,2,2`,
      // row 13: class_id 5 is ILD
      `${id(5)},Cardiomegaly,5,R1,1,1,2,2`,
      `${id(5)},No finding,14,R2,,,,`,
      '',
    ].join('\n'),
  );
  const { entries, summary } = await buildDatasetIndex({
    dataset: 'vindr',
    root,
    checkFiles: false,
    split: 'patient',
    splitFractions: [1, 0, 0],
  });
  const by = Object.fromEntries(entries.map((e) => [e.dicomId.slice(-1), [e.labels, e.labelMask]]));
  assert.equal(by, {
    '1': [
      [0, 1, 0, 0, 0],
      [1, 1, 1, 0, 1],
    ],
    // the two refused reads are gone: R3's "No finding" is the image's only read
    '2': [
      [0, 0, 0, 0, 0],
      [1, 1, 1, 0, 1],
    ],
    '5': [
      [0, 0, 0, 0, 0],
      [1, 1, 1, 0, 1],
    ],
  });
  assert.equal(summary.dropped.counts, { 'bad-label-value': 8, 'bad-row': 1 });
  const classes =
    'Aortic enlargement, Atelectasis, Calcification, Cardiomegaly, Consolidation, ILD, Infiltration, Lung Opacity, Nodule/Mass, Other lesion, Pleural effusion, Pleural thickening, Pneumothorax, Pulmonary fibrosis, No finding';
  assert.equal(summary.dropped.examples['bad-label-value'], [
    `${file}, row 4, id ${id(2)}, field "class_name": "cardiomegaly" is not a VinBigData class (${classes})`,
    `${file}, row 5, id ${id(2)}, field "class_name": "cardiomegaly" is not a VinBigData class (${classes})`,
    `${file}, row 7, id ${id(3)}, field "class_name": "Pleural Effusion" is not a VinBigData class (${classes})`,
  ]);
  assert.equal(summary.dropped.examples['bad-row'], [
    `${file}, row 12, id ${id(4)}, field "rad_id": blank (each read names its radiologist)`,
  ]);
  // the ones past the three examples, and a table without class_id (names only)
  writeFileSync(
    file,
    [KAGGLE_HEAD, `${id(4)},,3,R2,1,1,2,2`, `${id(5)},Cardiomegaly,5,R1,1,1,2,2`, ''].join('\n'),
  );
  const more = await buildDatasetIndex({ dataset: 'vindr', root, checkFiles: false });
  assert.equal(more.summary.dropped.examples['bad-label-value'], [
    `${file}, row 1, id ${id(4)}, field "class_name": "" is not a VinBigData class (${classes})`,
    `${file}, row 2, id ${id(5)}, field "class_id": "5" is not the id of "Cardiomegaly" (3)`,
  ]);
  writeFileSync(
    file,
    ['image_id,class_name,rad_id', `${id(5)},Cardiomegaly,R1`, `${id(6)},Cardiomegally,R1`, ''].join('\n'),
  );
  const names = await buildDatasetIndex({ dataset: 'vindr', root, checkFiles: false });
  assert.equal(
    names.entries.map((e) => [e.dicomId, e.labels]),
    [[id(5), [0, 1, 0, 0, 0]]],
  );
  assert.equal(names.summary.dropped.counts, { 'bad-label-value': 1 });
});

test('PhysioNet: a test table without Edema leaves Edema unknown (mask 0), not negative; a blank rad_id is refused', async () => {
  const root = tempDir('cxrmask-vindr-noedema-');
  mkdirSync(join(root, 'annotations'));
  const train = join(root, 'annotations', 'image_labels_train.csv');
  writeFileSync(
    train,
    [
      HEAD,
      `${A},R1,0,0,0,0,1,0,0`,
      `${A},R2,0,0,0,0,1,0,0`,
      `${A},R3,0,0,0,0,0,0,1`,
      `${A},,0,0,0,0,0,0,1`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(root, 'annotations', 'image_labels_test.csv'),
    `image_id,Atelectasis,Cardiomegaly,Consolidation,Pleural effusion,No finding\n${C},0,1,0,0,0\n`,
  );
  for (const blank of ['zeros', 'ignore'] as const) {
    const { entries, summary } = await buildDatasetIndex({
      dataset: 'vindr',
      root,
      checkFiles: false,
      validateFraction: 0,
      blank,
    });
    const by = Object.fromEntries(entries.map((e) => [e.dicomId, [e.split, e.labels, e.labelMask]]));
    assert.equal(by[C], ['test', [0, 1, 0, 0, 0], [1, 1, 1, 0, 1]], blank);
    // the blank reader is not a fourth reader: Edema is 2 of 3
    assert.equal(by[A], ['train', [0, 0, 0, 1, 0], [1, 1, 1, 1, 1]], blank);
    assert.equal(summary.perLabel.Edema, {
      positive: 1,
      negative: 0,
      ignored: 1,
      rawUncertain: 0,
      rawBlank: 1,
    });
    assert.equal(summary.dropped.counts, { 'bad-row': 1 });
    assert.equal(summary.dropped.examples['bad-row'], [
      `${train}, row 4, id ${A}, field "rad_id": blank (each read names its radiologist)`,
    ]);
  }
});

test('every drop reason has examples: view-not-selected and no-positive-label name the table and image', async () => {
  const root = tempDir('cxrmask-vindr-views-');
  writeFileSync(
    join(root, 'train.csv'),
    [KAGGLE_HEAD, `${id(1)},Cardiomegaly,3,R1,1,1,2,2`, `${id(2)},No finding,14,R1,,,,`, ''].join('\n'),
  );
  const file = join(root, 'train.csv');
  const ap = await buildDatasetIndex({ dataset: 'vindr', root, checkFiles: false, views: ['AP'] });
  assert.equal(ap.summary.dropped.counts, { 'view-not-selected:PA': 2 });
  assert.equal(ap.summary.dropped.examples['view-not-selected:PA'], [
    `${file}, id ${id(1)}: view "PA" is not among the selected views (AP)`,
    `${file}, id ${id(2)}: view "PA" is not among the selected views (AP)`,
  ]);
  const pos = await buildDatasetIndex({ dataset: 'vindr', root, checkFiles: false, requirePositive: true });
  assert.equal(
    pos.entries.map((e) => e.dicomId),
    [id(1)],
  );
  assert.equal(pos.summary.dropped.examples['no-positive-label'], [
    `${file}, id ${id(2)}: none of the five findings is a raw 1 (requirePositive)`,
  ]);
});

test.run();
