/** openCsv (MIMIC's tables) refuses a record past its cap instead of buffering it: bounded memory. */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
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

test('too-large names the data row (header = row 0), not the physical line: quoted newlines and the header do not count', async () => {
  const dir = tempDir();
  const read = async (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    const rows: number[] = [];
    try {
      const csv = await openCsv(p, [], { maxRecordChars: 100 });
      for await (const r of csv.records) rows.push(r.row);
    } catch (e) {
      assert.instance(e, DataError);
      assert.is((e as DataError).reason, 'too-large');
      return { rows, err: e as DataError };
    }
    throw new Error('no too-large error');
  };
  // data row 3 is on lines 5-6 (row 2 holds a quoted newline); csv-parse's line count said 5
  const a = await read('rows.csv', `a,b\n1,2\n"x\ny",3\n\n4,${'Z'.repeat(200)}\n5,6\n`);
  assert.is(a.err.message, `${join(dir, 'rows.csv')}, row 3: a record exceeds 100 characters`);
  assert.equal(a.err.where, { file: join(dir, 'rows.csv'), row: 3 });
  const b = await read('first.csv', `a,b\n4,${'Z'.repeat(200)}\n`);
  assert.is(b.err.message, `${join(dir, 'first.csv')}, row 1: a record exceeds 100 characters`);
  const h = await read('header.csv', `${'h'.repeat(200)}\n1\n`);
  assert.is(h.err.message, `${join(dir, 'header.csv')}, row 0: the header exceeds 100 characters`);
  // csv-parse parses a chunk ahead of the reader: the row is still the record's own
  const far = await read('far.csv', `a,b\n${'1,2\n'.repeat(300000)}"x\ny",3\n4,${'Z'.repeat(200)}\n`);
  assert.is(far.err.where.row, 300002);
});

test.run();
