/** warnOnce: one warning per code and folder, however the folder is named. */

import { relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { warnOnce } from '../../ts/common/warn-once.js';

test('a code is given once per folder, relative and absolute names alike; other codes and folders still warn', async () => {
  const codes: string[] = [];
  const listen = (w: Error & { code?: string }) => codes.push(`${w.code} ${w.message}`);
  process.on('warning', listen);
  try {
    const abs = `${process.cwd()}/runs/warn-once-a`;
    warnOnce(abs, 'CXRMASK_TEST_A', 'first');
    warnOnce(relative(process.cwd(), abs), 'CXRMASK_TEST_A', 'again, named relatively');
    warnOnce(`${abs}/`, 'CXRMASK_TEST_A', 'again, with a slash');
    warnOnce(abs, 'CXRMASK_TEST_B', 'another code');
    warnOnce(`${abs}-2`, 'CXRMASK_TEST_A', 'another folder');
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  } finally {
    process.off('warning', listen);
  }
  assert.equal(codes, [
    'CXRMASK_TEST_A first',
    'CXRMASK_TEST_B another code',
    'CXRMASK_TEST_A another folder',
  ]);
});

test.run();
