/** openCsv (MIMIC's tables) refuses a record past its cap instead of buffering it: bounded memory. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_CSV_RECORD_CHARS, openCsv } from '../../ts/data/csv.js';
import { DataError } from '../../ts/data/errors.js';
import { tempDir } from './helpers.js';

test('a 40 MB field is a too-large DataError naming the file, and RSS stays bounded', async () => {
  const p = join(tempDir(), 'huge.csv');
  writeFileSync(p, `dicom_id,ViewPosition\nok,PA\n${'x'.repeat(40 << 20)},PA\nlast,AP\n`);
  const before = process.memoryUsage().rss;
  const csv = await openCsv(p, ['dicom_id'], { maxRecordChars: 1 << 20 });
  const seen: string[] = [];
  try {
    for await (const r of csv.records) seen.push(r.values[0]!);
    assert.unreachable('the huge record was read');
  } catch (e) {
    assert.instance(e, DataError);
    assert.is((e as DataError).reason, 'too-large');
    assert.match((e as Error).message, /huge\.csv/);
  }
  assert.equal(seen, ['ok']);
  const grown = (process.memoryUsage().rss - before) / 2 ** 20;
  assert.ok(grown < 64, `RSS grew by ${grown.toFixed(0)} MiB reading a 40 MB field with a 1 MiB cap`);
  assert.ok(MAX_CSV_RECORD_CHARS >= 1 << 20 && MAX_CSV_RECORD_CHARS <= 64 << 20);
});

test.run();
