/** The byte-level CSV scan behind the CheXmask offset index agrees with csv-parse on awkward input. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { scanCsvRows, splitCsvRecord } from '../../ts/service/csv-scan.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-csvscan-'));

test('ranges and picked cells match csv-parse: quotes, escaped quotes, line breaks in cells, empty lines', async () => {
  const text = '\ufeffid,note,n\n' + 'a,"x, ""y""\r\nz",1\n' + '\n' + '\n' + '"b",plain,2\n' + 'c,"",3';
  const path = join(tmp, 'awkward.csv');
  writeFileSync(path, text);
  const bytes = readFileSync(path);
  const want = parse(bytes, { bom: true, skip_empty_lines: true }) as string[][];
  const got: { range: [number, number]; cells: string[] }[] = [];
  const header = await scanCsvRows(
    path,
    (h) => [h.indexOf('n'), h.indexOf('id')],
    (start, end, cells) => got.push({ range: [start, end], cells }),
  );
  assert.equal(header, want[0]);
  assert.equal(
    got.map((g) => g.cells),
    want.slice(1).map((r) => [r[2], r[0]]),
  );
  got.forEach((g, i) => {
    assert.equal(splitCsvRecord(bytes.subarray(...g.range)), want[i + 1]);
  });
  assert.is(splitCsvRecord(Buffer.from('a,b\nc,d\n')), null, 'two records are refused');
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
