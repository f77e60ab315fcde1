/** Repeated rows in the MIMIC tables: an identical repeat is counted and taken once, a conflicting one is an error naming both rows. */

import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildIndex } from '../../ts/data/datasets/mimic.js';

import { rejects, synthTree, tempDir } from './helpers.js';

/** A copy of the synthetic MIMIC root whose `table` CSV gets `edit` applied to its lines. */
async function editedRoot(table: string, edit: (lines: string[]) => string[]): Promise<string> {
  const s = await synthTree();
  const root = tempDir('cxrmask-dup-');
  cpSync(s.mimicRoot, root, { recursive: true });
  const p = join(root, `mimic-cxr-2.0.0-${table}.csv.gz`);
  const lines = gunzipSync(readFileSync(p)).toString('utf8').trimEnd().split('\n');
  writeFileSync(p, gzipSync(`${edit(lines).join('\n')}\n`));
  return root;
}

test('an identical repeated metadata, split or chexpert row is taken once and counted per file', async () => {
  const s = await synthTree();
  const base = await buildIndex({ root: s.mimicRoot });
  assert.equal(base.summary.duplicates.counts, {});
  for (const table of ['metadata', 'split', 'chexpert']) {
    const root = await editedRoot(table, (l) => [...l, l[1], l[2]]);
    const { entries, summary } = await buildIndex({ root });
    // the same images, once each, with the same splits and labels
    assert.equal(entries, base.entries, table);
    const file = join(root, `mimic-cxr-2.0.0-${table}.csv.gz`);
    assert.equal(summary.duplicates.counts, { [file]: 2 }, table);
    assert.match(summary.duplicates.examples[file][0], new RegExp(`row ${'\\d+'} repeats row 1 `));
  }
});

test('a conflicting repeat is an error naming the file, both rows and the field', async () => {
  const s = await synthTree();
  const im = s.images.find((x) => x.split === 'validate' && (x.view === 'PA' || x.view === 'AP'));
  assert.ok(im);
  // a second split row moving an image from validate to test
  let root = await editedRoot('split', (l) => [...l, `${im.dicomId},${im.studyId},${im.subjectId},test`]);
  const n = s.images.length;
  await rejects(
    buildIndex({ root }),
    new RegExp(
      `split\\.csv\\.gz, row ${n + 1}, id ${im.dicomId}, field "split": rows \\d+ and ${n + 1} both give dicom_id ${im.dicomId} but disagree on "split" \\("validate" vs "test"\\)`,
    ),
  );
  // a second chexpert row changing a study's labels
  root = await editedRoot('chexpert', (l) => {
    const cells = l[1].split(',');
    cells[2] = cells[2] === '1.0' ? '0.0' : '1.0';
    return [...l, cells.join(',')];
  });
  await rejects(
    buildIndex({ root }),
    /chexpert\.csv\.gz, row \d+, id .*field "Atelectasis": rows 1 and \d+ both give study/,
  );
  // a second metadata row with another view
  root = await editedRoot('metadata', (l) => {
    const cells = l[1].split(',');
    cells[4] = cells[4] === 'PA' ? 'AP' : 'PA';
    return [...l, cells.join(',')];
  });
  await rejects(
    buildIndex({ root }),
    /metadata\.csv\.gz, row \d+, id .*field "ViewPosition": rows 1 and \d+ both give dicom_id/,
  );
});

test.run();
