/** openCsv (MIMIC's tables) refuses a record past its cap instead of buffering it: bounded memory. */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { MAX_CSV_RECORD_CHARS, openCsv } from '../../ts/data/csv.js';
import { tempDir } from './helpers.js';

test('an 80 MB field is a too-large DataError naming the file, and RSS stays bounded', async () => {
  const p = join(tempDir(), 'huge.csv');
  // Written in 1 MiB pieces so the test itself never holds the field.
  const fd = openSync(p, 'w');
  writeSync(fd, 'dicom_id,ViewPosition\nok,PA\n');
  const piece = Buffer.alloc(1 << 20, 'x');
  for (let i = 0; i < 80; i++) writeSync(fd, piece);
  writeSync(fd, ',PA\nlast,AP\n');
  closeSync(fd);
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
  // Buffering the field would take ≥ 80 MiB (160 MiB as a JS string); the cap keeps it near 1 MiB.
  assert.ok(grown < 48, `RSS grew by ${grown.toFixed(0)} MiB reading an 80 MB field with a 1 MiB cap`);
  assert.ok(MAX_CSV_RECORD_CHARS >= 1 << 20 && MAX_CSV_RECORD_CHARS <= 64 << 20);
});

test.run();
