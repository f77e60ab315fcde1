/** CheXpert adapter on CheXpert's real train.csv (223,414 rows, from the torchxrayvision wheel). */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chexpertId } from '../../ts/data/datasets/chexpert.js';
import { buildDatasetIndex } from '../../ts/data/datasets/registry.js';
import { rejects, tempDir } from './helpers.js';
import { realTables, realTablesMissing, TABLES } from './real-tables.js';

const tables = realTables();
const HEADER =
  'Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices';
const VALID = [
  HEADER,
  'CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,,1.0,1.0,1.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0',
  'CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg,Male,70,Frontal,PA,,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0',
  'CheXpert-v1.0-small/valid/patient64542/study1/view2_lateral.jpg,Male,70,Lateral,,,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0',
];

test('CheXmask id: the Path without its CheXpert-v1.0[-small]/ folder', () => {
  assert.is(
    chexpertId('CheXpert-v1.0-small/train/patient18591/study2/view1_frontal.jpg'),
    'train/patient18591/study2/view1_frontal.jpg',
  );
  assert.is(
    chexpertId('CheXpert-v1.0/valid/patient64541/study1/view1_frontal.jpg'),
    'valid/patient64541/study1/view1_frontal.jpg',
  );
  assert.is(
    chexpertId('train/patient00001/study1/view1_frontal.jpg'),
    'train/patient00001/study1/view1_frontal.jpg',
  );
});

if (tables) {
  test('the real CheXpert train.csv: 223,414 rows, views, raw 1/0/-1/blank counts per finding', async () => {
    const root = tempDir('cxrmask-chexpert-');
    symlinkSync(join(tables, TABLES.chexpert), join(root, 'train.csv.gz'));
    writeFileSync(join(root, 'valid.csv'), `${VALID.join('\n')}\n`);
    const { entries, summary } = await buildDatasetIndex({
      dataset: 'chexpert',
      root,
      checkFiles: false,
      views: ['PA', 'AP', 'LATERAL', 'LL', 'RL'],
      uncertain: 'ignore',
      blank: 'ignore',
    });
    assert.is(summary.metadataRows, 223414 + 3);
    assert.equal(summary.viewsSeen, { AP: 161590 + 1, LATERAL: 32387 + 1, PA: 29420 + 1, LL: 16, RL: 1 });
    assert.is(entries.length, 223417);
    const train = (f: string) => summary.perLabel[f];
    // train counts (the table in docs/data.md) plus the three valid rows
    assert.equal(train('Atelectasis'), {
      positive: 33376,
      negative: 1328 + 3,
      ignored: 33739 + 154971,
      rawUncertain: 33739,
      rawBlank: 154971,
    });
    assert.equal(train('Cardiomegaly'), {
      positive: 27000 + 1,
      negative: 11116 + 2,
      ignored: 8087 + 177211,
      rawUncertain: 8087,
      rawBlank: 177211,
    });
    assert.equal(train('Consolidation'), {
      positive: 14783,
      negative: 28097 + 3,
      ignored: 27742 + 152792,
      rawUncertain: 27742,
      rawBlank: 152792,
    });
    assert.equal(train('Edema'), {
      positive: 52246 + 1,
      negative: 20726 + 2,
      ignored: 12984 + 137458,
      rawUncertain: 12984,
      rawBlank: 137458,
    });
    assert.equal(train('Pleural Effusion'), {
      positive: 86187 + 2,
      negative: 35396 + 1,
      ignored: 11628 + 90203,
      rawUncertain: 11628,
      rawBlank: 90203,
    });
    assert.is(summary.subjects, 64540 + 2);
    assert.is(summary.patientsInSeveralSplits, 0);
    assert.is(summary.perSplit.test, 3);
    const e = entries.find((x) => x.dicomId === 'train/patient00001/study1/view1_frontal.jpg');
    assert.equal(e && { ...e, labels: e.labels.join(''), labelMask: e.labelMask.join('') }, {
      dataset: 'chexpert',
      dicomId: 'train/patient00001/study1/view1_frontal.jpg',
      subjectId: '00001',
      studyId: '1',
      view: 'AP',
      split: e?.split,
      path: 'train/patient00001/study1/view1_frontal.jpg',
      labels: '00000',
      labelMask: '00000',
    });
    // the default: frontal PA/AP only, uncertain as zeros
    const frontal = await buildDatasetIndex({
      dataset: 'chexpert',
      root,
      checkFiles: false,
      validateFraction: 0,
    });
    assert.is(frontal.entries.length, 191010 + 2);
    assert.equal(frontal.summary.perSplit, { train: 191010, validate: 0, test: 2 });
  });
} else test(realTablesMissing(), () => {});

test('CheXpert: missing images are counted, a repeated Path conflicting on a label names both rows', async () => {
  const root = tempDir('cxrmask-chexpert-small-');
  writeFileSync(
    join(root, 'train.csv'),
    `${[HEADER, VALID[1].replaceAll('valid', 'train'), VALID[1].replaceAll('valid', 'train')].join('\n')}\n`,
  );
  writeFileSync(join(root, 'valid.csv'), `${VALID.join('\n')}\n`);
  mkdirSync(join(root, 'valid', 'patient64541', 'study1'), { recursive: true });
  writeFileSync(join(root, 'valid', 'patient64541', 'study1', 'view1_frontal.jpg'), 'x');
  const { entries, summary } = await buildDatasetIndex({ dataset: 'chexpert', root });
  assert.equal(
    entries.map((e) => `${e.split} ${e.path}`),
    ['test valid/patient64541/study1/view1_frontal.jpg'],
  );
  assert.is(summary.dropped.counts['image-missing'], 2);
  assert.equal(summary.duplicates.counts, { [join(root, 'train.csv')]: 1 });
  writeFileSync(
    join(root, 'train.csv'),
    `${[HEADER, VALID[1].replaceAll('valid', 'train'), VALID[1].replaceAll('valid', 'train').replace(',1.0,1.0,1.0,', ',1.0,0.0,1.0,')].join('\n')}\n`,
  );
  await rejects(
    buildDatasetIndex({ dataset: 'chexpert', root }),
    /train\.csv, row 2, id train\/patient64541\/study1\/view1_frontal\.jpg, field "Cardiomegaly": rows 1 and 2/,
  );
});

test('CheXpert-coded labels: only 1, 0, -1 as plain decimals (or blank); 0x1, 1e0, +1, .1e1 are bad-label-value', async () => {
  const root = tempDir('cxrmask-chexpert-cells-');
  const cells = ['1.0', '1', '-1.0', '0.0', '0', '-0.0', '1.00', '', 'nan'];
  const bad = ['0x1', '1e0', '+1', '.1e1', '0.99999999999999999', '2.0', '0b1', 'Infinity', '1.5'];
  // Edema is the 6th of the 14 CheXpert findings; Edema "-0.0" reads as 0
  const row = (i: number, v: string) =>
    `CheXpert-v1.0-small/train/patient${String(i).padStart(5, '0')}/study1/view1_frontal.jpg,Male,50,Frontal,AP,,,,,,${v},,,,,,,,`;
  const table = join(root, 'train.csv');
  writeFileSync(table, `${[HEADER, ...[...cells, ...bad].map((v, i) => row(i + 1, v))].join('\n')}\n`);
  writeFileSync(join(root, 'valid.csv'), `${HEADER}\n`);
  const { entries, summary } = await buildDatasetIndex({
    dataset: 'chexpert',
    root,
    checkFiles: false,
    validateFraction: 0,
    uncertain: 'ignore',
    blank: 'ignore',
  });
  assert.equal(
    entries.map((e) => [e.labels[3], e.labelMask[3]]),
    [
      [1, 1],
      [1, 1],
      [0, 0],
      [0, 1],
      [0, 1],
      [0, 1],
      [1, 1],
      [0, 0],
      [0, 0],
    ],
  );
  assert.ok(Object.is(entries[5].labels[3], 0), '-0.0 is 0, not -0');
  assert.equal(summary.dropped.counts, { 'bad-label-value': bad.length });
  const id = (i: number) => `train/patient${String(i).padStart(5, '0')}/study1/view1_frontal.jpg`;
  assert.equal(
    summary.dropped.examples['bad-label-value'],
    bad
      .slice(0, 3)
      .map(
        (v, k) =>
          `${table}, row ${cells.length + k + 1}, id ${id(cells.length + k + 1)}, field "Edema": "${v}" is not 1, 0, -1 or blank`,
      ),
  );
});

test.run();
