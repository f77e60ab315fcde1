/** NIH ChestX-ray14 adapter on NIH's real Data_Entry_2017_v2020 table (112,120 rows, from the torchxrayvision wheel). */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nihLabels } from '../../ts/data/datasets/nih14.js';
import { buildDatasetIndex } from '../../ts/data/datasets/registry.js';
import { rejects, tempDir } from './helpers.js';
import { realTables, realTablesMissing, TABLES } from './real-tables.js';

const tables = realTables();

/** A root with the real table and split lists made from it: patients whose id is a multiple of 5 go to test. */
function nihRoot(): string {
  const root = tempDir('cxrmask-nih-');
  symlinkSync(join(tables as string, TABLES.nih), join(root, 'Data_Entry_2017_v2020.csv.gz'));
  const lines = gunzipSync(readFileSync(join(tables as string, TABLES.nih)))
    .toString('utf8')
    .trim()
    .split('\n')
    .slice(1);
  const tv: string[] = [];
  const te: string[] = [];
  for (const l of lines) {
    const [id, , , patient] = l.split(',');
    (Number(patient) % 5 === 0 ? te : tv).push(id);
  }
  writeFileSync(join(root, 'train_val_list.txt'), `${tv.join('\n')}\n`);
  writeFileSync(join(root, 'test_list.txt'), `${te.join('\n')}\n`);
  return root;
}

test('Finding Labels: pipe-separated, Effusion is Pleural Effusion, unknown tokens refused', () => {
  assert.equal(nihLabels('Effusion|Atelectasis'), [1, 0, 0, 0, 1]);
  assert.equal(nihLabels('No Finding'), [0, 0, 0, 0, 0]);
  assert.equal(nihLabels('Edema|Infiltration|Cardiomegaly|Consolidation'), [0, 1, 1, 1, 0]);
  assert.match(nihLabels('Pleural Effusion') as string, /not an NIH finding/);
  assert.match(nihLabels('No Finding|Mass') as string, /No Finding/);
});

if (tables) {
  test('the real NIH table: 112,120 rows, views, five-label counts, official split kept by patient', async () => {
    const root = nihRoot();
    const { entries, summary } = await buildDatasetIndex({
      dataset: 'nih14',
      root,
      checkFiles: false,
      validateFraction: 0,
    });
    assert.is(summary.metadataRows, 112120);
    assert.is(entries.length, 112120);
    assert.equal(summary.viewsSeen, { PA: 67310, AP: 44810 });
    assert.is(summary.perLabel.Atelectasis.positive, 11559);
    assert.is(summary.perLabel.Cardiomegaly.positive, 2776);
    assert.is(summary.perLabel.Consolidation.positive, 4667);
    assert.is(summary.perLabel.Edema.positive, 2303);
    assert.is(summary.perLabel['Pleural Effusion'].positive, 13317);
    for (const f of Object.values(summary.perLabel)) {
      assert.is(f.rawUncertain, 0);
      assert.is(f.rawBlank, 0);
      assert.is(f.ignored, 0);
    }
    assert.is(summary.subjects, 30805);
    assert.equal(summary.perSplit, { train: 89754, validate: 0, test: 22366 });
    assert.equal(summary.duplicates.counts, {});
    const e = entries.find((x) => x.dicomId === '00000001_000.png');
    assert.ok(e);
    assert.equal(
      { ...e, labels: e.labels.join(''), labelMask: e.labelMask.join('') },
      {
        dataset: 'nih14',
        dicomId: '00000001_000.png',
        subjectId: '00000001',
        studyId: '000',
        view: 'PA',
        split: 'train',
        path: 'images/00000001_000.png',
        labels: '01000',
        labelMask: '11111',
      },
    );
  });

  test('the real NIH table: validate carved from train_val by patient; --require-positive keeps 27,195', async () => {
    const root = nihRoot();
    const { entries, summary } = await buildDatasetIndex({
      dataset: 'nih14',
      root,
      checkFiles: false,
      requirePositive: true,
    });
    assert.is(entries.length, 27195);
    assert.is(summary.patientsInSeveralSplits, 0);
    assert.ok(summary.perSplit.validate > 0.05 * (summary.perSplit.train + summary.perSplit.validate));
    assert.ok(summary.perSplit.validate < 0.15 * (summary.perSplit.train + summary.perSplit.validate));
    const p = await buildDatasetIndex({ dataset: 'nih14', root, checkFiles: false, split: 'patient' });
    assert.is(p.entries.length, 112120);
    assert.is(p.summary.patientsInSeveralSplits, 0);
  });
} else test(realTablesMissing(), () => {});

test("NIH from Google Cloud's bucket: its png/ folder is found (it indexed 0 images, exit 0, before)", async () => {
  const root = tempDir('cxrmask-nih-gcs-');
  const head =
    'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]';
  writeFileSync(
    join(root, 'Data_Entry_2017_v2020.csv'),
    [head, '00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143', ''].join('\n'),
  );
  writeFileSync(join(root, 'train_val_list.txt'), '00000001_000.png\n');
  writeFileSync(join(root, 'test_list.txt'), '');
  mkdirSync(join(root, 'png'));
  writeFileSync(join(root, 'png', '00000001_000.png'), 'x');
  const { entries } = await buildDatasetIndex({ dataset: 'nih14', root, validateFraction: 0 });
  assert.equal(
    entries.map((e) => e.path),
    ['png/00000001_000.png'],
  );
});

test('NIH: repeated rows counted, a conflicting repeat names both rows, an id in both lists is an error', async () => {
  const root = tempDir('cxrmask-nih-dup-');
  const head =
    'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]';
  const r1 = '00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143';
  const r2 = '00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171';
  writeFileSync(join(root, 'Data_Entry_2017_v2020.csv'), [head, r1, r2, r1, ''].join('\n'));
  writeFileSync(join(root, 'train_val_list.txt'), '00000001_000.png\n00000001_000.png\n');
  writeFileSync(join(root, 'test_list.txt'), '00000002_000.png\n');
  mkdirSync(join(root, 'images_001', 'images'), { recursive: true });
  writeFileSync(join(root, 'images_001', 'images', '00000001_000.png'), 'x');
  const { entries, summary } = await buildDatasetIndex({ dataset: 'nih14', root, validateFraction: 0 });
  // the second image is not downloaded: counted, not fatal; the Kaggle folder layout is found
  assert.equal(
    entries.map((e) => e.path),
    ['images_001/images/00000001_000.png'],
  );
  assert.is(summary.dropped.counts['image-missing'], 1);
  assert.equal(summary.duplicates.counts, {
    [join(root, 'train_val_list.txt')]: 1,
    [join(root, 'Data_Entry_2017_v2020.csv')]: 1,
  });
  writeFileSync(
    join(root, 'Data_Entry_2017_v2020.csv'),
    [head, r1, r2, r1.replace('Cardiomegaly', 'Edema'), ''].join('\n'),
  );
  await rejects(
    buildDatasetIndex({ dataset: 'nih14', root }),
    /Data_Entry_2017_v2020\.csv, row 3, id 00000001_000\.png, field "Finding Labels": rows 1 and 3 both give Image Index 00000001_000\.png but disagree/,
  );
  writeFileSync(join(root, 'Data_Entry_2017_v2020.csv'), [head, r1, r2, ''].join('\n'));
  writeFileSync(join(root, 'test_list.txt'), '00000002_000.png\n00000001_000.png\n');
  await rejects(
    buildDatasetIndex({ dataset: 'nih14', root }),
    /00000001_000\.png is in both official split lists/,
  );
});

test('NIH: a row dropped for its view or for having no positive is an example naming file, row and id', async () => {
  const root = tempDir('cxrmask-nih-views-');
  const head =
    'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]';
  const table = join(root, 'Data_Entry_2017_v2020.csv');
  writeFileSync(
    table,
    [
      head,
      '00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143',
      '00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171',
      '00000003_000.png,Edema,0,3,81,M,,2500,2048,0.171,0.171',
      '00000004_000.png,Edema,0,4,81,M,pa,2500,2048,0.171,0.171',
      '',
    ].join('\n'),
  );
  const { entries, summary } = await buildDatasetIndex({
    dataset: 'nih14',
    root,
    checkFiles: false,
    split: 'patient',
    requirePositive: true,
  });
  assert.equal(
    entries.map((e) => e.dicomId),
    ['00000001_000.png'],
  );
  assert.equal(summary.dropped.counts, {
    'no-positive-label': 1,
    'view-not-selected:(blank)': 1,
    'view-not-selected:pa': 1,
  });
  assert.equal(summary.dropped.examples, {
    'no-positive-label': [
      `${table}, row 2, id 00000002_000.png: none of the five findings is a raw 1 (requirePositive)`,
    ],
    'view-not-selected:(blank)': [
      `${table}, row 3, id 00000003_000.png: view "" is not among the selected views (PA, AP)`,
    ],
    'view-not-selected:pa': [
      `${table}, row 4, id 00000004_000.png: view "pa" is not among the selected views (PA, AP)`,
    ],
  });
});

test.run();
