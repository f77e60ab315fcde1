/** WantedIds.find on a cell's bytes answers exactly what `wanted.has(cell.trim())` answers. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mulberry32 } from '../../ts/common/random.js';
import { WantedIds } from '../../ts/data/wanted-ids.js';

test('byte lookup equals Set.has of the trimmed text: blanks, non-ASCII, empty and near-miss ids', () => {
  const rnd = mulberry32(9);
  const pick = (s: string) => s[Math.floor(rnd() * s.length)]!;
  const word = () =>
    Array.from({ length: Math.floor(rnd() * 12) }, () => pick('ab01-_/.\u00e9\u00a0 ')).join('');
  const ids = ['', 'é', '\u00a0x', 'plain', 'dup', 'dup', ...Array.from({ length: 3000 }, word)];
  const wanted = new WantedIds(ids);
  const set = new Set(ids);
  assert.is(wanted.size, set.size);
  const cells = [
    ...ids,
    ' plain ',
    '\tplain\r',
    'plai',
    'plainn',
    '\u00a0plain\u00a0',
    '\ufeffplain',
    ' é',
    'x',
  ];
  for (let k = 0; k < 3000; k++) cells.push(`${pick(' \t')}${word()}${pick(' \u00a0')}`);
  for (const cell of cells) {
    const want = set.has(cell.trim());
    const got = wanted.find(Buffer.from(cell, 'utf8'));
    assert.is(got >= 0, want, JSON.stringify(cell));
    if (got >= 0) assert.is(wanted.list[got], cell.trim());
    assert.is(wanted.findText(cell), got);
  }
});

test.run();
