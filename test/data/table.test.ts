/** The row loop every label table shares: refusals before the duplicate check, repeats skipped or refused, rows counted. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReasonCounter } from '../../ts/common/errors.js';
import { readTable, shortRow } from '../../ts/data/table.js';
import { rejects, tempDir } from './helpers.js';

function table(lines: string[]): string {
  const f = join(tempDir(), 't.csv');
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
}

test('a refused row is counted by reason and never reaches the duplicate check; a repeat is skipped once', async () => {
  const f = table(['id,v,extra', 'a,1,x', ' a ,1 ,x', 'bad,2,x', 'bad,3,x', 'b,2', 'c, 3 ,y']);
  const counters = { dropped: new ReasonCounter(), duplicates: new ReasonCounter() };
  const taken: [string, string, number][] = [];
  const rows = await readTable<string>(f, ['id', 'v'], counters, (csv) => {
    const id = csv.col('id');
    const v = csv.col('v');
    return {
      keyName: 'id',
      read: (r) => {
        const short = shortRow(`${f}, row ${r.row}`, r, csv.header);
        if (short) return { drop: 'short', message: short };
        // two "bad" rows that disagree: refused here, so the duplicate check never sees them
        if (r.cell(id) === 'bad') return { drop: 'bad-id' };
        return { key: r.cell(id), value: r.cell(v) };
      },
      take: (value, r, key) => taken.push([key, value, r.row]),
    };
  });
  assert.is(rows, 6);
  // cells are trimmed, for the key, the value and the duplicate comparison alike
  assert.equal(taken, [
    ['a', '1', 1],
    ['c', '3', 6],
  ]);
  assert.equal(counters.dropped.counts, { 'bad-id': 2, short: 1 });
  assert.equal(counters.dropped.examples.short, [`${f}, row 5: 2 field(s), the header has 3`]);
  assert.equal(counters.duplicates.counts, { [f]: 1 });
  assert.equal(counters.duplicates.examples[f], [`${f}, row 2 repeats row 1 (id a)`]);
});

test('a repeated key whose rows disagree is an error naming the file, both rows and the field', async () => {
  const f = table(['id,v', 'a,1', 'a,2']);
  const counters = { dropped: new ReasonCounter(), duplicates: new ReasonCounter() };
  const err = await rejects(
    readTable(f, ['id'], counters, () => ({
      keyName: 'id',
      read: (r) => ({ key: r.cell(0), value: null }),
      take: () => {},
    })),
    /rows 1 and 2 both give id a but disagree on "v" \("1" vs "2"\)/,
  );
  assert.is((err as { where?: { file?: string } }).where?.file, f);
});

test.run();
