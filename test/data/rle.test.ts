import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { mulberry32 } from '../../ts/common/random.js';
import { decodeRle, encodeRle, parseRle } from '../../ts/data/rle.js';

test('decodes 1-based, row-major runs (hand-computed 3×4 mask)', () => {
  // 3 rows × 4 cols. "2 3" → flat 1..3 (row 0 cols 1–3); "8 2" → flat 7,8 (row 1 col 3, row 2 col 0).
  const m = decodeRle('2 3 8 2', 3, 4);
  assert.equal(Array.from(m), [0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0]);
});

test('a run of the whole mask, and the last pixel alone', () => {
  assert.equal(Array.from(decodeRle('1 6', 2, 3)), [1, 1, 1, 1, 1, 1]);
  assert.equal(Array.from(decodeRle('6 1', 2, 3)), [0, 0, 0, 0, 0, 1]);
});

test('encode matches the CheXmask convention and round-trips random masks', () => {
  assert.is(encodeRle([0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0], 3, 4), '2 3 8 2');
  assert.is(encodeRle(new Uint8Array(12), 3, 4), '');
  const rnd = mulberry32(5);
  for (let t = 0; t < 50; t++) {
    const h = 1 + Math.floor(rnd() * 20);
    const w = 1 + Math.floor(rnd() * 20);
    const m = new Uint8Array(h * w);
    for (let i = 0; i < m.length; i++) m[i] = rnd() < 0.4 ? 1 : 0;
    assert.equal(Array.from(decodeRle(encodeRle(m, h, w), h, w)), Array.from(m));
  }
});

test('empty cells are empty masks', () => {
  for (const cell of ['', '  ', 'nan', 'NaN', null, undefined]) {
    assert.is(
      decodeRle(cell as string, 2, 2).reduce((a, b) => a + b, 0),
      0,
    );
  }
});

test('malformed RLE: odd count, run beyond H×W, zero start, junk — errors name the field', () => {
  const where = { file: 'x.csv', row: 7, field: 'Heart' };
  const cases: [string, RegExp][] = [
    ['1 2 3', /odd number of values/],
    ['10 5', /runs beyond the 3×4 mask/],
    ['0 2', /1-based/],
    ['1 2x', /not a non-negative integer/],
    ['1 -2', /not a non-negative integer/],
  ];
  for (const [rle, re] of cases) {
    try {
      parseRle(rle, 3, 4, where);
      assert.unreachable(`should have thrown for "${rle}"`);
    } catch (e) {
      assert.instance(e, DataError);
      assert.match((e as Error).message, re);
      assert.match((e as Error).message, /x\.csv, row 7, field "Heart"/);
      assert.is((e as DataError).reason, 'bad-rle');
    }
  }
});

test.run();
