import { copyFileSync, readFileSync, renameSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { type ChexmaskRow, joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { preprocess } from '../../ts/images/preprocess.js';

import { synthesize } from '../../ts/synth/synthesize.js';
import { rejects, tempDir } from './helpers.js';

let small: Awaited<ReturnType<typeof synthesize>> | null = null;
async function tree() {
  small ??= await synthesize({
    out: tempDir(),
    n: 40,
    seed: 5,
    width: 128,
    height: 144,
    lowRcaRate: 0,
    missingChexmaskRate: 0,
  });
  return small;
}

test('missing and corrupt JPEGs are recorded and skipped, not fatal', async () => {
  const s = await tree();
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    entries.map((e) => e.dicomId),
  );
  const [a, b, c] = entries;
  unlinkSync(join(s.mimicRoot, a.path)); // missing after indexing
  const bytes = readFileSync(join(s.mimicRoot, b.path));
  writeFileSync(join(s.mimicRoot, b.path), bytes.subarray(0, Math.floor(bytes.length / 2))); // truncated JPEG
  writeFileSync(join(s.mimicRoot, c.path), 'not a jpeg at all');
  const sum = await buildCache({ entries, root: s.mimicRoot, chexmask: rows, out: tempDir(), shardSize: 16 });
  assert.is(sum.skipped.counts['image-missing'], 1);
  assert.is(sum.skipped.counts['image-corrupt'], 2);
  assert.is(sum.cached, entries.filter((e) => rows.has(e.dicomId)).length - 3);
  assert.match(
    sum.skipped.examples['image-missing'][0],
    new RegExp(`${a.dicomId}\\.jpg: cannot read image: ENOENT`),
  );
  assert.match(
    sum.skipped.examples['image-corrupt'].join('\n'),
    new RegExp(`${b.dicomId}\\.jpg: cannot decode image`),
  );
  // the index drops a missing file at index time too (counted)
  const again = await buildIndex({ root: s.mimicRoot });
  assert.is(again.summary.dropped.counts['image-missing'], 1);
  await rejects(preprocess(join(s.mimicRoot, a.path)), /ENOENT/);
});

test('swapped or wrong Height/Width: refused per row, counted, never drawn', async () => {
  const s = await tree();
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    entries.map((e) => e.dicomId),
  );
  // entries 0–2 were damaged by the previous test
  const ok = entries.slice(3).filter((e) => rows.has(e.dicomId));
  const [x, y] = ok;
  const rx = rows.get(x.dicomId) as ChexmaskRow;
  const ry = rows.get(y.dicomId) as ChexmaskRow;
  const bad = new Map(rows);
  bad.set(x.dicomId, { ...rx, height: rx.width, width: rx.height });
  bad.set(y.dicomId, { ...ry, height: ry.height + 3 });
  const sum = await buildCache({ entries: ok, root: s.mimicRoot, chexmask: bad, out: tempDir() });
  assert.is(sum.skipped.counts['size-swapped'], rx.width === rx.height ? undefined : 1);
  assert.is(sum.skipped.counts['size-mismatch'], 1);
  assert.is(sum.cached, ok.length - 2);
  assert.match(
    sum.skipped.examples['size-swapped'][0],
    /are swapped relative to the JPEG.*refusing to draw a misaligned mask/,
  );
  try {
    await preprocess(join(s.mimicRoot, x.path), bad.get(x.dicomId));
    assert.unreachable();
  } catch (e) {
    assert.instance(e, DataError);
    assert.match((e as Error).message, new RegExp(`${x.dicomId}.*field "Height/Width"`));
  }
});

test('truncated gzip CSV: a clear error naming the file', async () => {
  const s = await tree();
  const root = tempDir();
  for (const f of ['metadata', 'chexpert', 'split'])
    copyFileSync(join(s.mimicRoot, `mimic-cxr-2.0.0-${f}.csv.gz`), join(root, `mimic-cxr-2.0.0-${f}.csv.gz`));
  const meta = join(root, 'mimic-cxr-2.0.0-metadata.csv.gz');
  const size = readFileSync(meta).length;
  truncateSync(meta, Math.floor(size * 0.6));
  await rejects(
    buildIndex({ root, checkFiles: false }),
    /mimic-cxr-2\.0\.0-metadata\.csv\.gz: truncated gzip stream/,
  );
});

test('CSV missing a column: error names the file and the column', async () => {
  const s = await tree();
  const root = tempDir();
  for (const f of ['metadata', 'split'])
    copyFileSync(join(s.mimicRoot, `mimic-cxr-2.0.0-${f}.csv.gz`), join(root, `mimic-cxr-2.0.0-${f}.csv.gz`));
  const text = gunzipSync(readFileSync(join(s.mimicRoot, 'mimic-cxr-2.0.0-chexpert.csv.gz'))).toString();
  // drop the Edema column; write it plain (.csv) to check that form is found too
  const lines = text
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const k = lines[0].indexOf('Edema');
  writeFileSync(
    join(root, 'mimic-cxr-2.0.0-chexpert.csv'),
    `${lines.map((l) => l.filter((_, i) => i !== k).join(',')).join('\n')}\n`,
  );
  const err = await rejects(
    buildIndex({ root, checkFiles: false }),
    /chexpert\.csv: missing column\(s\) "Edema"/,
  );
  assert.instance(err, DataError);
  // and a missing CSV altogether
  renameSync(join(root, 'mimic-cxr-2.0.0-split.csv.gz'), join(root, 'gone.csv.gz'));
  await rejects(
    buildIndex({ root, checkFiles: false }),
    /neither .*mimic-cxr-2\.0\.0-split\.csv\.gz nor .*split\.csv exists/,
  );
});

test('bad label values and metadata rows are dropped, counted and named', async () => {
  const s = await tree();
  const root = tempDir();
  for (const f of ['split'])
    copyFileSync(join(s.mimicRoot, `mimic-cxr-2.0.0-${f}.csv.gz`), join(root, `mimic-cxr-2.0.0-${f}.csv.gz`));
  const chex = gunzipSync(readFileSync(join(s.mimicRoot, 'mimic-cxr-2.0.0-chexpert.csv.gz')))
    .toString()
    .trim()
    .split('\n');
  const parts = chex[1].split(',');
  parts[2] = 'maybe';
  chex[1] = parts.join(',');
  writeFileSync(join(root, 'mimic-cxr-2.0.0-chexpert.csv.gz'), gzipSync(`${chex.join('\n')}\n`));
  const meta = gunzipSync(readFileSync(join(s.mimicRoot, 'mimic-cxr-2.0.0-metadata.csv.gz')))
    .toString()
    .trim()
    .split('\n');
  meta.push(',,,,PA,1,1,,,,,');
  writeFileSync(join(root, 'mimic-cxr-2.0.0-metadata.csv.gz'), gzipSync(`${meta.join('\n')}\n`));
  const { summary } = await buildIndex({ root, checkFiles: false });
  assert.is(summary.dropped.counts['bad-label-value'], 1);
  assert.match(
    summary.dropped.examples['bad-label-value'][0],
    /chexpert\.csv\.gz, row 1, field "Atelectasis": "maybe"/,
  );
  assert.is(summary.dropped.counts['bad-metadata-row'], 1);
  assert.ok((summary.dropped.counts['no-labels-for-study'] ?? 0) >= 1);
});

test.run();
