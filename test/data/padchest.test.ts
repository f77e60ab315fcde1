/** PadChest adapter on PadChest's real label table (160,861 rows, from the torchxrayvision wheel). */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PADCHEST_TABLE, padchestLabelList, padchestLabels } from '../../ts/data/datasets/padchest.js';
import { buildDatasetIndex } from '../../ts/data/datasets/registry.js';
import { rejects, tempDir } from './helpers.js';
import { realTables, realTablesMissing, TABLES } from './real-tables.js';

const tables = realTables();

test('Labels: a Python list literal, items stripped; exact names, pericardial effusion is not pleural', () => {
  assert.equal(padchestLabelList("['cardiomegaly', ' pleural effusion']"), [
    'cardiomegaly',
    'pleural effusion',
  ]);
  assert.equal(padchestLabelList('[]'), []);
  assert.is(padchestLabelList('nan'), null);
  assert.equal(padchestLabels(['lobar atelectasis', 'pulmonary edema']), [1, 0, 0, 1, 0]);
  assert.equal(padchestLabels(['pericardial effusion', 'edema']), [0, 0, 0, 0, 0]);
  assert.equal(
    padchestLabels(['loculated fissural effusion', 'cardiomegaly', 'consolidation']),
    [0, 1, 1, 0, 1],
  );
});

if (tables) {
  test('the real PadChest table: 160,861 rows, PA/AP kept, five-label counts, split by patient', async () => {
    const root = tempDir('cxrmask-padchest-');
    symlinkSync(join(tables, TABLES.padchest), join(root, `${PADCHEST_TABLE}.csv.gz`));
    const { entries, summary } = await buildDatasetIndex({ dataset: 'padchest', root, checkFiles: false });
    assert.is(summary.metadataRows, 160861);
    assert.is(summary.viewsSeen.PA, 91728);
    assert.is(summary.viewsSeen.AP, 4559);
    assert.is(summary.viewsSeen.AP_horizontal, 14346);
    assert.is(summary.dropped.counts['no-labels'], 68);
    assert.is(entries.length, 96219);
    assert.equal(
      Object.values(summary.perLabel).map((l) => l.positive),
      [4428, 8779, 1070, 463, 3944],
    );
    assert.is(summary.subjects, 63914);
    assert.is(summary.patientsInSeveralSplits, 0);
    assert.ok(summary.perSplit.validate > 0 && summary.perSplit.test > 0);
    assert.ok(entries.every((e) => e.path === `${e.path.split('/')[0]}/${e.dicomId}`));
  });
} else test(realTablesMissing(), () => {});

test('PadChest: images under {ImageDir}/, missing ones counted, conflicting repeats name both rows', async () => {
  const root = tempDir('cxrmask-padchest-small-');
  const head = ',ImageID,ImageDir,StudyID,PatientID,Projection,Labels';
  const r1 = `0,a_1.png,3,s1,p1,PA,"['cardiomegaly']"`;
  const r2 = `1,b_2.png,3,s2,p2,AP,"['normal']"`;
  writeFileSync(join(root, `${PADCHEST_TABLE}.csv`), [head, r1, r2, r1, ''].join('\n'));
  mkdirSync(join(root, '3'));
  writeFileSync(join(root, '3', 'a_1.png'), 'x');
  const { entries, summary } = await buildDatasetIndex({ dataset: 'padchest', root });
  assert.equal(
    entries.map((e) => [e.path, e.labels.join('')]),
    [['3/a_1.png', '01000']],
  );
  assert.is(summary.dropped.counts['image-missing'], 1);
  assert.is(Object.values(summary.duplicates.counts)[0], 1);
  writeFileSync(
    join(root, `${PADCHEST_TABLE}.csv`),
    [head, r1, r2, r1.replace('PA', 'AP').replace('0,', '2,'), ''].join('\n'),
  );
  await rejects(buildDatasetIndex({ dataset: 'padchest', root }), /rows 1 and 3 both give ImageID a_1\.png/);
});

test.run();
