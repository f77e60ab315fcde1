/**
 * Ids that would name a file outside the image tree are refused before they touch a path;
 * short label rows and broken index entries give DataErrors naming file and row.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { FINDINGS } from '../../ts/common/labels.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { type IndexEntry, imagePath, readIndex } from '../../ts/data/mimic.js';

import { idProblem } from '../../ts/data/mimic-ids.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { rejects, tempDir } from './helpers.js';

const GOOD = {
  dicom: '02aa804e-bde0afdd-112c0b34-7bc16630-4e384014',
  subject: '10000032',
  study: '50414267',
};
const EVIL = '../../../../../evil/x';

/** A three-CSV MIMIC root: one good image, a traversal dicom_id, a traversal subject_id, a one-field label row. */
function tinyRoot(): string {
  const root = tempDir();
  const base = join(root, 'mimic-cxr-2.0.0-');
  writeFileSync(
    `${base}metadata.csv`,
    [
      'dicom_id,subject_id,study_id,ViewPosition',
      `${GOOD.dicom},${GOOD.subject},${GOOD.study},PA`,
      `${EVIL},${GOOD.subject},${GOOD.study},PA`,
      `aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee,../10000032,${GOOD.study},PA`,
    ].join('\n'),
  );
  writeFileSync(
    `${base}chexpert.csv`,
    [
      `subject_id,study_id,${FINDINGS.join(',')}`,
      `${GOOD.subject},${GOOD.study},1.0,,0.0,-1.0,`,
      '10000033',
    ].join('\n'),
  );
  writeFileSync(
    `${base}split.csv`,
    [
      'dicom_id,study_id,subject_id,split',
      `${GOOD.dicom},${GOOD.study},${GOOD.subject},train`,
      `${EVIL},${GOOD.study},${GOOD.subject},train`,
      `aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee,${GOOD.study},${GOOD.subject},train`,
    ].join('\n'),
  );
  // every image "exists", the traversal target too: only the id check keeps it out
  for (const p of [
    imagePath(GOOD.subject, GOOD.study, GOOD.dicom),
    `files/p10/p${GOOD.subject}/s${GOOD.study}/${EVIL}.jpg`,
  ]) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), '');
  }
  return root;
}

test('id shapes: MIMIC ids pass, traversal and odd ids do not', () => {
  assert.is(idProblem('dicom_id', GOOD.dicom), null);
  assert.is(idProblem('subject_id', GOOD.subject), null);
  assert.is(idProblem('study_id', GOOD.study), null);
  for (const bad of [EVIL, 'x', '', '02aa804e/bde0afdd-112c0b34-7bc16630-4e384014', `${GOOD.dicom}.jpg`])
    assert.ok(idProblem('dicom_id', bad), bad);
  for (const bad of ['1000003', '100000321', '../1', '1e7', ' 10000032'])
    assert.ok(idProblem('subject_id', bad), bad);
});

test('index: traversal ids and one-field label rows are dropped with a reason naming file and row', async () => {
  const root = tinyRoot();
  const { entries, summary } = await buildIndex({ root });
  assert.equal(
    entries.map((e) => e.dicomId),
    [GOOD.dicom],
  );
  assert.ok(entries.every((e) => !e.path.includes('..')));
  const d = summary.dropped;
  assert.is(d.counts['bad-metadata-row'], 2);
  assert.match(
    d.examples['bad-metadata-row']![0]!,
    /metadata\.csv, row 2, .*field "dicom_id" is "\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/evil\/x"/,
  );
  assert.match(d.examples['bad-metadata-row']![1]!, /row 3, .*field "subject_id"/);
  assert.is(d.counts['short-chexpert-row'], 1);
  assert.match(d.examples['short-chexpert-row']![0]!, /chexpert\.csv, row 2: 1 field\(s\), the header has 7/);
  assert.is(d.counts['bad-split-id'], 1);
});

function entryLines(entries: object[]): string {
  const dir = tempDir();
  const p = join(dir, 'index.jsonl');
  writeFileSync(p, `${entries.map((e) => JSON.stringify(e)).join('\n')}\n`);
  return p;
}

const good: IndexEntry = {
  dicomId: GOOD.dicom,
  subjectId: GOOD.subject,
  studyId: GOOD.study,
  view: 'PA',
  split: 'train',
  path: imagePath(GOOD.subject, GOOD.study, GOOD.dicom),
  labels: [1, 0, 0, 0, 0],
  labelMask: [1, 1, 1, 1, 1],
};

test('readIndex: an entry without path, with a foreign path or a traversal id names file, line and field', async () => {
  assert.equal(await readIndex(entryLines([good])), [good]);
  const { path: _p, ...noPath } = good;
  const cases: [object, RegExp][] = [
    [noPath, /index\.jsonl, row 2, field "path": undefined is not the image path of its ids/],
    [{ ...good, path: '../../../../etc/x.jpg' }, /row 2, field "path"/],
    [{ ...good, dicomId: EVIL }, /row 2, field "dicomId": dicomId is "\.\.\//],
    [{ ...good, split: 'val' }, /row 2, field "split"/],
    [{ ...good, labels: [1, 0] }, /row 2, field "labels": expected 5 values/],
  ];
  for (const [bad, re] of cases) {
    const err = await rejects(readIndex(entryLines([good, bad])), re);
    assert.instance(err, DataError);
  }
});

test('buildCache refuses an entry without a path with a DataError, not a TypeError', async () => {
  const { path: _p, ...noPath } = good;
  const err = await rejects(
    buildCache({
      entries: [good, noPath as IndexEntry],
      root: tempDir(),
      chexmask: null,
      requireMask: false,
      out: tempDir(),
    }),
    /index entries, row 2, field "path"/,
  );
  assert.instance(err, DataError);
});

test.run();
