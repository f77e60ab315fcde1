import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { joinChexmask, parseChexmaskRecord } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { formatLandmarksFlat } from '../../ts/data/landmarks.js';

import { rejects, synthTree, tempDir } from './helpers.js';

test('join keeps indexed rows, refuses low Dice RCA, counts absent ids — as the generator wrote', async () => {
  const s = await synthTree();
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const ids = entries.map((e) => e.dicomId);
  const { rows, summary } = await joinChexmask(s.chexmaskCsv, ids);
  const inIndex = new Set(ids);
  const imgs = s.images.filter((im) => inIndex.has(im.dicomId));
  assert.is(summary.kept, imgs.filter((im) => im.chexmask === 'ok').length);
  assert.is(summary.refused.counts['low-dice'] ?? 0, imgs.filter((im) => im.chexmask === 'low-rca').length);
  assert.is(summary.missing, imgs.filter((im) => im.chexmask === 'missing').length);
  assert.ok((summary.refused.counts['low-dice'] ?? 0) > 0, 'generator should write low-RCA rows');
  assert.is(summary.rowsRead, s.chexmaskRows);
  for (const im of imgs.filter((x) => x.chexmask === 'ok')) {
    const r = rows.get(im.dicomId);
    assert.ok(r);
    assert.is(r?.width, im.width);
    assert.is(r?.height, im.height);
    assert.is(r?.landmarks.length, 240);
    assert.ok((r?.diceMean ?? 0) >= 0.7);
  }
  // minDice is configurable and reported
  const all = await joinChexmask(s.chexmaskCsv, ids, { minDice: 0 });
  assert.is(all.summary.kept, summary.kept + (summary.refused.counts['low-dice'] ?? 0));
  assert.is(all.summary.minDice, 0);
});

const HEADER = 'dicom_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width';
const LM = formatLandmarksFlat(Array.from({ length: 240 }, (_, i) => 10 + (i % 7)));

test('bad rows are refused per row, counted, named; good rows survive', async () => {
  const dir = tempDir();
  const csv = join(dir, 'cm.csv');
  writeFileSync(
    csv,
    [
      HEADER,
      `good,0.9,0.95,"${LM}",1 4,5 4,9 2,4,4`,
      `odd,0.9,0.95,"${LM}",1 4 7,5 4,9 2,4,4`,
      `beyond,0.9,0.95,"${LM}",1 4,15 4,9 2,4,4`,
      `empty,0.9,0.95,"${LM}",,,9 2,4,4`,
      `badlm,0.9,0.95,"1,2,3",1 4,5 4,9 2,4,4`,
      `badsize,0.9,0.95,"${LM}",1 4,5 4,9 2,four,4`,
      `low,0.5,0.6,"${LM}",1 4,5 4,9 2,4,4`,
      `good,0.9,0.95,"${LM}",1 4,5 4,9 2,4,4`,
      `notwanted,0.9,0.95,"${LM}",1 4,5 4,9 2,4,4`,
    ].join('\n'),
  );
  const ids = ['good', 'odd', 'beyond', 'empty', 'badlm', 'badsize', 'low', 'absent'];
  const { rows, summary } = await joinChexmask(csv, ids, { keepRle: true });
  assert.equal([...rows.keys()].sort(), ['empty', 'good']);
  assert.equal(rows.get('empty')?.emptyMasks, ['rightLung', 'leftLung']);
  assert.is(summary.emptyMaskCells.leftLung, 1);
  assert.is(summary.refused.counts['bad-rle'], 2);
  assert.is(summary.refused.counts['bad-landmarks'], 1);
  assert.is(summary.refused.counts['bad-size'], 1);
  assert.is(summary.refused.counts['low-dice'], 1);
  assert.is(summary.refused.counts.duplicate, 1);
  assert.is(summary.missing, 1);
  assert.equal(summary.missingExamples, ['absent']);
  const ex = summary.refused.examples['bad-rle'].join('\n');
  assert.match(ex, /cm\.csv, row 2, id odd, field "Left Lung": malformed RLE: odd number/);
  assert.match(ex, /row 3, id beyond, field "Right Lung": .*runs beyond the 4×4 mask/);
  assert.match(summary.refused.examples['bad-size'][0], /field "Height": not an integer: "four"/);
});

test('stopEarly stops at the last wanted id; onProgress reports rows read', async () => {
  const s = await synthTree();
  const ids = s.images.filter((im) => im.chexmask === 'ok').map((im) => im.dicomId);
  let last = 0;
  const { rows, summary } = await joinChexmask(s.chexmaskCsv, [ids[2]], {
    stopEarly: true,
    onProgress: (n) => {
      last = n;
    },
  });
  assert.is(rows.size, 1);
  assert.ok(summary.rowsRead < s.chexmaskRows, `${summary.rowsRead} rows read`);
  assert.is(last, summary.rowsRead);
});

test('a CSV missing a column fails up front, naming the file and the column', async () => {
  const dir = tempDir();
  const csv = join(dir, 'cm.csv');
  writeFileSync(
    csv,
    `dicom_id,Dice RCA (Mean),Landmarks,Left Lung,Right Lung,Height,Width\nx,0.9,"${LM}",,,4,4\n`,
  );
  await rejects(joinChexmask(csv, ['x']), /cm\.csv: missing column\(s\) "Heart"/);
});

test('parseChexmaskRecord: a row given as an object (for services)', () => {
  const r = parseChexmaskRecord({
    dicom_id: 'a',
    'Dice RCA (Mean)': 0.8,
    Landmarks: LM,
    'Left Lung': '1 2',
    'Right Lung': '',
    Heart: '3 1',
    Height: 2,
    Width: 2,
  });
  assert.is(r.dicomId, 'a');
  assert.equal(r.emptyMasks, ['rightLung']);
  assert.is(r.rle, undefined);
});

test('hostile numbers: hex sizes, infinite or far-away landmarks are refused naming the field', () => {
  const base = {
    dicom_id: 'a',
    'Dice RCA (Mean)': '0.8',
    Landmarks: formatLandmarksFlat(Array.from({ length: 240 }, (_, i) => 100 + (i % 50))),
    'Left Lung': '1 2',
    'Right Lung': '',
    Heart: '3 1',
    Height: '397',
    Width: '400',
  };
  assert.is(parseChexmaskRecord(base).height, 397);
  const refused = (patch: Record<string, string>, re: RegExp) => {
    try {
      parseChexmaskRecord({ ...base, ...patch });
      assert.unreachable(`accepted ${JSON.stringify(patch).slice(0, 80)}`);
    } catch (e) {
      assert.instance(e, DataError);
      assert.match((e as Error).message, re);
    }
  };
  refused({ Height: '0x18d' }, /Height/);
  refused({ Width: '1e3' }, /Width/);
  refused({ 'Dice RCA (Mean)': '0x1' }, /Dice RCA \(Mean\)/);
  const lm = Array.from({ length: 240 }, (_, i) => 100 + (i % 50));
  refused(
    { Landmarks: formatLandmarksFlat(lm.map((v, i) => (i === 7 ? 1e12 : v))) },
    /Landmarks.*point 3 y = 1000000000000/s,
  );
  refused({ Landmarks: formatLandmarksFlat(lm).replace(/^100/, '1e999') }, /Landmarks.*Infinity/s);
});

test('diceOf reads a Dice cell the same from bytes (fast path) and from text; NaN unless a plain decimal', async () => {
  const { diceOf } = await import('../../ts/data/chexmask.js');
  const { mulberry32 } = await import('../../ts/common/random.js');
  const rnd = mulberry32(3);
  const cells = [
    '0.8523697853088379',
    ' 0.5\t',
    '-0',
    '+.5',
    '5.',
    '9007199254740993',
    '0.70000000000000001',
  ];
  for (let k = 0; k < 20000; k++) {
    cells.push(String(rnd() * 10 ** Math.floor(rnd() * 6 - 3)), rnd().toFixed(Math.floor(rnd() * 18)));
  }
  for (const c of cells) {
    // a Dice outside [0, 1] is not a Dice (a percentage, a typo): NaN, refused as bad-dice
    const v = Number(c);
    const want = v >= 0 && v <= 1 ? v : Number.NaN;
    assert.ok(Object.is(diceOf(c), want), c);
    assert.ok(Object.is(diceOf(Buffer.from(c)), want), `bytes ${c}`);
  }
  for (const c of ['', ' ', 'nan', '0x1', 'Infinity', '1e999', '.', '-', '1.2.3', '0,5']) {
    assert.ok(Number.isNaN(diceOf(c)) && Number.isNaN(diceOf(Buffer.from(c))), c);
  }
  for (const c of ['85', '1.5', '-0.2', '1.0000001', '9007199254740993', '-1e-9']) {
    assert.ok(Number.isNaN(diceOf(c)) && Number.isNaN(diceOf(Buffer.from(c))), c);
    assert.ok(Number.isNaN(diceOf(Number(c))), `number ${c}`);
  }
  assert.equal(
    ['0', '1', '1.0', '0.7', '7e-1'].map((c) => [diceOf(c), diceOf(Buffer.from(c))]),
    [
      [0, 0],
      [1, 1],
      [1, 1],
      [0.7, 0.7],
      [0.7, 0.7],
    ],
  );
});

test('a Dice outside [0, 1] is bad-dice naming file, row, id and field, in the join (every source) and the service', async () => {
  const { ChexmaskIndex } = await import('../../ts/service/chexmask-index.js');
  const csv = join(tempDir(), 'percent.csv');
  const dices = { d: '85', e: '1.5', f: '-0.2', g: '1', h: '0', i: '0.95', j: '1.0000001' };
  writeFileSync(
    csv,
    [HEADER, ...Object.entries(dices).map(([id, d]) => `${id},${d},0.95,"${LM}",1 4,5 4,9 2,4,4`), ''].join(
      '\n',
    ),
  );
  const ids = Object.keys(dices);
  const where = (row: number, id: string, d: string) =>
    `${csv}, row ${row}, id ${id}, field "Dice RCA (Mean)": "${d}" is outside [0, 1]`;
  for (const source of [undefined, 'landmarks', 'rle'] as const) {
    const { rows, summary } = await joinChexmask(csv, ids, source ? { source } : {});
    assert.equal([...rows.keys()], ['g', 'i'], String(source));
    assert.equal(summary.refused.counts, { 'bad-dice': 4, 'low-dice': 1 }, String(source));
    assert.equal(summary.refused.examples['bad-dice'], [
      where(1, 'd', '85'),
      where(2, 'e', '1.5'),
      where(3, 'f', '-0.2'),
    ]);
    // before, a percent-scale file's 85 passed minDice and counted in the kept mean
    assert.is(summary.diceMeanOfKept, (1 + 0.95) / 2);
  }
  const index = await ChexmaskIndex.build(csv);
  try {
    const err = (await index.row('d').catch((e: unknown) => e)) as DataError;
    assert.instance(err, DataError);
    assert.is(err.reason, 'bad-dice');
    assert.is(err.message, `${csv}, id d, field "Dice RCA (Mean)": "85" is outside [0, 1]`);
    assert.is((await index.row('g')).diceMean, 1);
  } finally {
    await index.close();
  }
  assert.throws(
    () =>
      parseChexmaskRecord({
        ...Object.fromEntries(HEADER.split(',').map((h) => [h, ''])),
        dicom_id: 'x',
        'Dice RCA (Mean)': '1.5',
        Landmarks: LM,
        Height: '4',
        Width: '4',
      }),
    (e: unknown) =>
      e instanceof DataError &&
      e.reason === 'bad-dice' &&
      /field "Dice RCA \(Mean\)": "1\.5" is outside \[0, 1\]/.test(e.message),
  );
});

test.run();
