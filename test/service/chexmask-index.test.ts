/**
 * Duplicate CheXmask ids: the service's ChexmaskIndex, `cxrmask predict`'s chexmaskRowFor and the
 * training join (joinChexmask) pick the same row of an id by one rule (claimsId: the first row whose
 * Dice passes the threshold), and refuse the same ids for the same reason.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { chexmaskRowFor, joinChexmask } from '../../ts/data/chexmask.js';
import { formatLandmarksFlat } from '../../ts/data/landmarks.js';
import { ChexmaskIndex } from '../../ts/service/chexmask-index.js';
import { tempDir } from '../data/helpers.js';

const HEADER = 'dicom_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width';
/** A row whose landmarks start with `tag`, so the row served can be told from its duplicates. */
const row = (id: string, dice: string, tag: number, o: { landmarks?: string; cells?: number } = {}) => {
  const lm =
    o.landmarks ?? formatLandmarksFlat([tag, ...Array.from({ length: 239 }, (_, i) => 10 + (i % 7))]);
  const cells = [id, dice, '0.95', `"${lm}"`, '1 4', '5 4', '9 2', '4', '4'];
  return cells.slice(0, o.cells ?? cells.length).join(',');
};

/** Per id: its rows, and what both readers must answer (the tag of the row served, or the reason). */
const CASES: [string, string[], number | string][] = [
  ['low-then-good', [row('low-then-good', '0.5', 1), row('low-then-good', '0.9', 2)], 2],
  ['good-then-low', [row('good-then-low', '0.9', 3), row('good-then-low', '0.5', 4)], 3],
  ['good-then-good', [row('good-then-good', '0.8', 5), row('good-then-good', '0.99', 6)], 5],
  ['blank-dice-then-good', [row('blank-dice-then-good', '', 7), row('blank-dice-then-good', '0.9', 8)], 8],
  ['text-dice-then-good', [row('text-dice-then-good', '0x1', 9), row('text-dice-then-good', '0.9', 10)], 10],
  ['low-then-low', [row('low-then-low', '0.5', 11), row('low-then-low', '0.6', 12)], 'low-dice'],
  [
    'bad-landmarks-then-good',
    [
      row('bad-landmarks-then-good', '0.9', 13, { landmarks: '1,2,3' }),
      row('bad-landmarks-then-good', '0.9', 14),
    ],
    'bad-landmarks',
  ],
  [
    'short-then-good',
    [row('short-then-good', '0.9', 15, { cells: 5 }), row('short-then-good', '0.9', 16)],
    'bad-row',
  ],
  ['single-blank-dice', [row('single-blank-dice', ' ', 17)], 'bad-dice'],
];

test('a duplicate id: the index and chexmaskRowFor serve the row the join keeps, and refuse what the join refuses', async () => {
  const csv = join(tempDir(), 'dups.csv');
  // interleave the ids' rows so that duplicates are not adjacent
  const lines = [HEADER, ...CASES.map((c) => c[1][0]), ...CASES.flatMap((c) => c[1].slice(1))];
  writeFileSync(csv, `${lines.join('\n')}\n`);
  const ids = CASES.map((c) => c[0]);
  const { rows, summary } = await joinChexmask(csv, ids, { source: 'landmarks' });
  const index = await ChexmaskIndex.build(csv);
  try {
    assert.is(index.summary.duplicates, lines.length - 1 - ids.length);
    for (const [id, , want] of CASES) {
      const joined = rows.get(id);
      const served = await index.row(id).catch((e: unknown) => e);
      // predict's lookup, with its defaults (the threshold is serve's and the join's)
      const looked = (await chexmaskRowFor(csv, id).catch((e: unknown) => e)) as typeof joined;
      if (typeof want === 'number') {
        assert.not.instance(looked, Error, `${id}: chexmaskRowFor finds it`);
        assert.is(looked!.landmarks[0], want, `${id}: chexmaskRowFor gives the same row`);
        assert.ok(joined, `${id}: kept by the join`);
        assert.is(joined.landmarks[0], want, `${id}: the join keeps the row tagged ${want}`);
        assert.not.instance(served, Error, `${id}: served`);
        assert.is((served as typeof joined).landmarks[0], want, `${id}: the index serves the same row`);
        assert.is((served as typeof joined).diceMean, joined.diceMean);
      } else {
        assert.is(joined, undefined, `${id}: refused by the join`);
        assert.instance(served, DataError, `${id}: refused by the index`);
        assert.is((served as DataError).reason, want, `${id}: the index's reason`);
        assert.instance(looked, DataError, `${id}: refused by chexmaskRowFor`);
        assert.is((looked as unknown as DataError).reason, want, `${id}: chexmaskRowFor's reason`);
        assert.match((looked as unknown as Error).message, `id ${id}`);
        assert.ok(summary.refused.counts[want]! > 0, `${id}: the join counts ${want}`);
      }
    }
    // every matched row is kept or refused once
    const refusedRows = Object.values(summary.refused.counts).reduce((a, b) => a + b, 0);
    assert.is(summary.matched, summary.kept + refusedRows);
    assert.is(summary.refused.counts['duplicate'], 4);
  } finally {
    await index.close();
  }
});

test('stopEarly waits for a row that passes the threshold, not just any row of each id', async () => {
  const csv = join(tempDir(), 'stop.csv');
  writeFileSync(
    csv,
    `${[HEADER, row('a', '0.5', 1), row('b', '0.9', 2), row('a', '0.9', 3), row('c', '0.9', 4)].join('\n')}\n`,
  );
  const { rows, summary } = await joinChexmask(csv, ['a', 'b'], { source: 'landmarks', stopEarly: true });
  assert.is(rows.get('a')?.landmarks[0], 3);
  assert.is(summary.rowsRead, 4, 'stops at the row after the last id got its row');
});

test('an id the CSV lacks is unknown-id; a threshold outside [0, 1] is refused by name, before any read', async () => {
  const csv = join(tempDir(), 'one.csv');
  writeFileSync(csv, `${[HEADER, row('a', '0.9', 1)].join('\n')}\n`);
  const missing = await chexmaskRowFor(csv, 'b').catch((e: unknown) => e);
  assert.instance(missing, DataError);
  assert.is((missing as DataError).reason, 'unknown-id');
  assert.equal((missing as DataError).where, { file: csv, id: 'b' });
  // NaN would refuse every row and -1 accept every one: both are option errors naming minDice
  for (const minDice of [Number.NaN, -1, 2]) {
    const e = await ChexmaskIndex.build(csv, { minDice }).catch((x: unknown) => x);
    assert.instance(e, minDice > 1 || minDice < 0 ? RangeError : TypeError, String(minDice));
    assert.match((e as Error).message, /ChexmaskIndex\.build option 'minDice'/);
    const r = await chexmaskRowFor(csv, 'a', minDice).catch((x: unknown) => x);
    assert.match((r as Error).message, /option 'minDice'/);
  }
  const unknown = await ChexmaskIndex.build(csv, { minDise: 0.5 } as never).catch((x: unknown) => x);
  assert.match((unknown as Error).message, /unknown ChexmaskIndex\.build option 'minDise'/);
  const index = await ChexmaskIndex.build(csv, { minDice: 1, onProgress: () => {} });
  await index.close();
});

test('row() after close() says the index of that CSV is closed; close() twice is fine', async () => {
  const csv = join(tempDir(), 'closed.csv');
  writeFileSync(csv, `${[HEADER, row('a', '0.9', 1)].join('\n')}\n`);
  const index = await ChexmaskIndex.build(csv);
  assert.is((await index.row('a')).dicomId, 'a');
  // a read in flight when close() is called still completes
  const inFlight = index.row('a');
  await index.close();
  assert.is((await inFlight).dicomId, 'a');
  for (const id of ['a', 'b']) {
    const e = await index.row(id).catch((x: unknown) => x);
    assert.instance(e, Error);
    assert.is((e as Error).message, `the ChexmaskIndex of ${csv} is closed`);
  }
  await index.close();
});

test.run();
