import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { CsvScanner, KEEP, KEY, PEEK, SKIP } from '../../ts/data/csvscan.js';
import { csvParse, scanAll } from './csvscan-helpers.js';
import { rejects, tempDir } from './helpers.js';

const dir = tempDir();
let k = 0;
function file(text: string | Buffer, gz = false): string {
  const p = join(dir, `f${k++}.csv${gz ? '.gz' : ''}`);
  writeFileSync(p, gz ? gzipSync(text) : text);
  return p;
}

const CASES: Record<string, string> = {
  plain: 'a,b,c\n1,2,3\n4,5,6\n',
  'no final newline': 'a,b\n1,2\n3,4',
  crlf: 'a,b\r\n1,2\r\n"x\r\ny",4\r\n',
  'quoted commas, newlines, escapes': 'id,txt\n1,"a, b"\n2,"line1\nline2"\n3,"say ""hi"""\n4,""\n5,""""\n',
  'empty lines are skipped': '\na,b\n\n1,2\n\n\n3,4\n\n',
  'empty CRLF lines are skipped': 'a,b\r\n\r\n1,2\r\n\r\n',
  'trailing comma and short/long rows': 'a,b,c\n1,2,\n1\n1,2,3,4\n,,\n',
  bom: '\ufeffdicom_id,x\nq,1\n',
  'header spaces trimmed': ' a , b\n1,2\n',
  'quoted last field at EOF': 'a,b\n1,"2\n3"',
  'unicode cells': 'a,b\né,"ü,ß"\n',
};

for (const [name, text] of Object.entries(CASES)) {
  test(`scanner = csv-parse: ${name} (whole, and cut at every chunk size)`, async () => {
    const expected = csvParse(text);
    const p = file(text);
    assert.equal(await scanAll(p), expected);
    for (const chunkBytes of [1, 2, 3, 5, 8, 13]) assert.equal(await scanAll(p, { chunkBytes }), expected);
    assert.equal(await scanAll(file(text, true)), expected, 'gzip');
  });
}

test('skipped and peeked cells are not returned; peek says blank/nan', async () => {
  const p = file('id,a,b,c\nx,1 2,"  NaN ",\ny,  ,"big, skipped",nan x\n');
  const sc = await CsvScanner.open(p, { chunkBytes: 4 });
  const plan = new Uint8Array([KEY, PEEK, PEEK, PEEK]);
  const r1 = await sc.next(plan);
  assert.is(r1?.key, 'x');
  assert.equal(r1?.blank, [undefined, false, true, true]);
  assert.is(r1?.values[1], undefined);
  const r2 = await sc.next(new Uint8Array([KEY, PEEK, SKIP, PEEK]));
  assert.equal(r2?.blank.slice(1), [true, undefined, false]);
  assert.is(r2?.values[2], undefined);
  assert.is(r2?.fields, 4);
  assert.is(await sc.next(plan), null);
  await sc.close();
});

test('a rejected key skips the rest of the record, and the next record is intact', async () => {
  const p = file('v,id,w\n"1,1",a,"big\n,cell"\n2,b,3\n');
  const sc = await CsvScanner.open(p, { chunkBytes: 3 });
  const plan = new Uint8Array([KEEP, KEY, KEEP]);
  const onKey = (key: string) => key === 'b';
  const r1 = await sc.next(plan, onKey);
  assert.ok(r1?.rejected);
  assert.is(r1?.values[0]?.toString(), '1,1');
  assert.is(r1?.values[2], undefined);
  assert.is(r1?.fields, 3);
  const r2 = await sc.next(plan, onKey);
  assert.not.ok(r2?.rejected);
  assert.equal(
    r2?.values.map((v) => v?.toString()),
    ['2', 'b', '3'],
  );
  assert.is(r2?.row, 2);
  await sc.close();
});

test('a large kept cell: the buffer doubles to 16 MiB, then takes one cap plus a chunk (few copies, linear time)', async () => {
  const cell = 24 << 20;
  const chunkBytes = 1 << 16;
  const p = file(Buffer.concat([Buffer.from('id,lm\na,'), Buffer.alloc(cell, 0x31), Buffer.from('\nb,2\n')]));
  const grown: number[] = [];
  const alloc = Buffer.allocUnsafe;
  // the buffers the scanner allocates past its chunk and read-ahead buffers are the growth steps
  Buffer.allocUnsafe = (n: number) => {
    if (n > 2 * chunkBytes) grown.push(n);
    return alloc(n);
  };
  try {
    const sc = await CsvScanner.open(p, { chunkBytes });
    const a = await sc.next(new Uint8Array([KEY, KEEP]));
    assert.is(a?.values[1]?.length, cell);
    assert.ok(a?.values[1]?.every((c) => c === 0x31));
    const b = await sc.next(new Uint8Array([KEY, KEEP]));
    assert.is(b?.values[1]?.toString(), '2');
    await sc.close();
  } finally {
    Buffer.allocUnsafe = alloc;
  }
  // before: one more chunk per step (≈ 190 buffers, 2.4 GB copied for this cell)
  const doubling = [4, 8, 16, 32, 64, 128, 256].map((k) => k * chunkBytes);
  assert.equal(grown, [...doubling, (256 << 20) + chunkBytes]);
});

test('caps: a kept cell over maxFieldBytes flags its row (file, row, field); a skipped one is free', async () => {
  const big = 'x'.repeat(5000);
  const p = file(`id,rle,small\na,${big},1\nb,"${big}",2\nc,1 2,3\n`);
  for (const chunkBytes of [16, 1 << 20]) {
    const sc = await CsvScanner.open(p, { chunkBytes, maxFieldBytes: 1000 });
    const keep = new Uint8Array([KEY, KEEP, KEEP]);
    const a = await sc.next(keep);
    assert.instance(a?.oversize, DataError);
    assert.is(a?.oversize?.reason, 'too-large');
    assert.match(a?.oversize?.message ?? '', /f\d+\.csv, row 1, field "rle": the cell is over \d+ bytes/);
    assert.is(a?.key, 'a');
    assert.is(a?.values[2], undefined, 'later cells dropped');
    const b = await sc.next(new Uint8Array([KEY, SKIP, KEEP]));
    assert.is(b?.oversize, null, 'a skipped cell has no size limit');
    assert.is(b?.values[2]?.toString(), '2');
    const c = await sc.next(keep);
    assert.is(c?.values[1]?.toString(), '1 2');
    await sc.close();
  }
  const sc = await CsvScanner.open(p, { maxRecordBytes: 100 });
  const r = await sc.next(new Uint8Array([KEY, KEEP, KEEP]));
  assert.match(r?.oversize?.message ?? '', /row 1, field "rle": the record is over/);
  await sc.close();
});

test('malformed quoting: clear DataErrors naming file, row and field', async () => {
  const open = async (text: string, chunkBytes?: number) => {
    const sc = await CsvScanner.open(file(text), { chunkBytes });
    try {
      while (await sc.next(new Uint8Array(0), undefined, SKIP));
    } finally {
      await sc.close();
    }
  };
  for (const cb of [undefined, 4]) {
    await rejects(open('a,b\n1,"2\n3,4\n', cb), /row 1, field "b": the file ends inside a quoted field/);
    await rejects(
      open('a,b\n1,2\n3,"x"y\n', cb),
      /row 2, field "b": malformed CSV: "y" after the closing quote/,
    );
  }
  await rejects(CsvScanner.open(file('')), /file is empty/);
  await rejects(CsvScanner.open(join(dir, 'nope.csv')), /nope\.csv: file does not exist/);
});

test('gzip: truncated stream is a bad-gzip DataError; progress counts file bytes', async () => {
  const rows = ['id,v', ...Array.from({ length: 5000 }, (_, i) => `${i},${Math.sin(i)}`)].join('\n');
  const gz = gzipSync(rows);
  const p = file(gz.subarray(0, Math.floor(gz.length * 0.6)));
  const err = await rejects(scanAll(p), /truncated gzip stream/);
  assert.is((err as DataError).reason, 'bad-gzip');
  const q = file(rows);
  let last = [0, 0];
  const sc = await CsvScanner.open(q, { chunkBytes: 1024 }, (a, b) => {
    last = [a, b];
  });
  while (await sc.next(new Uint8Array(0)));
  await sc.close();
  assert.equal(last, [rows.length, rows.length]);
});

test('record byte ranges cut out records that splitRecord reads as csv-parse does (BOM, CRLF, empty lines)', async () => {
  const lf = '\ufeffid,note,n\n' + 'a,"x, ""y""\r\nz",1\n' + '\n' + '\n' + '"b",plain,2\n' + 'c,"",3';
  for (const [text, chunkBytes] of [lf, lf.replace(/\n/g, '\r\n')].flatMap((t) =>
    [1, 2, 3, 5, 1 << 20].map((c) => [t, c] as const),
  )) {
    const p = file(text);
    const bytes = Buffer.from(text);
    const want = csvParse(text).slice(1);
    const sc = await CsvScanner.open(p, { chunkBytes });
    const got: string[][] = [];
    for (let r = await sc.next(new Uint8Array(0)); r; r = await sc.next(new Uint8Array(0))) {
      got.push(CsvScanner.splitRecord(bytes.subarray(r.start, r.end)) ?? ['not one record']);
    }
    await sc.close();
    assert.equal(got, want, `chunkBytes ${chunkBytes}`);
  }
  assert.is(CsvScanner.splitRecord(Buffer.from('a,b\nc,d\n')), null, 'two records are refused');
  assert.is(CsvScanner.splitRecord(Buffer.from('a,"b\n')), null, 'an open quote is refused');
  assert.is(CsvScanner.splitRecord(Buffer.from('\r\n')), null, 'an empty line is no record');
});

test.run();
