import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import {
  formatLandmarksFlat,
  formatLandmarksNumpy,
  parseLandmarks,
  regionPolygon,
} from '../../ts/data/landmarks.js';

const pts = Array.from({ length: 240 }, (_, i) => (i % 2 ? 500 + i : i * 3 - 40)); // includes negatives

test('flat comma form (Preprocessed files)', () => {
  const text = formatLandmarksFlat(pts);
  assert.ok(text.startsWith('-40,501,'));
  assert.equal(Array.from(parseLandmarks(text)), pts);
});

test('numpy repr form (OriginalResolution files), with newlines and padding', () => {
  const text = formatLandmarksNumpy(pts);
  assert.ok(text.startsWith('[[-40 501]\n [-34 503]'));
  assert.equal(Array.from(parseLandmarks(text)), pts);
  // numpy pads columns with spaces: "[[ 403  115]\n [  67 1119]]"
  const padded = `[${Array.from({ length: 120 }, (_, k) => `[ ${pts[2 * k]}   ${pts[2 * k + 1]}]`).join('\n  ')}]`;
  assert.equal(Array.from(parseLandmarks(padded)), pts);
});

test('regions: RL 44, LL 50, H 26 in that order', () => {
  const lm = parseLandmarks(formatLandmarksFlat(pts));
  assert.is(regionPolygon(lm, 'rightLung').length, 88);
  assert.is(regionPolygon(lm, 'leftLung').length, 100);
  assert.is(regionPolygon(lm, 'heart').length, 52);
  assert.is(regionPolygon(lm, 'leftLung')[0], pts[88]);
  assert.is(regionPolygon(lm, 'heart')[1], pts[189]);
});

test('wrong point count and empty cells are refused, naming the field', () => {
  for (const [text, re] of [
    ['1,2,3', /expected 120 points \(240 numbers\), found 3/],
    ['', /empty/],
  ] as const) {
    try {
      parseLandmarks(text, { file: 'm.csv', row: 3, field: 'Landmarks' });
      assert.unreachable();
    } catch (e) {
      assert.instance(e, DataError);
      assert.match((e as Error).message, re);
      assert.match((e as Error).message, /m\.csv, row 3, field "Landmarks"/);
    }
  }
});

test.run();
