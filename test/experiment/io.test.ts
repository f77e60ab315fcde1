/** The one crash-safe write helper: parents made, temp removed on error, same helper from the data layer. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { withAtomicPath, writeFileAtomic, writeFileAtomicAsync } from '../../ts/common/io.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-io-'));

test('writeFileAtomicAsync (mkdir -p, no temp left on error)', async () => {
  const deep = join(tmp, 'a', 'b', 'c.json');
  await writeFileAtomicAsync(deep, '{"x":1}\n');
  assert.is(readFileSync(deep, 'utf8'), '{"x":1}\n');
  // the rename fails when the target is a non-empty folder: the temp file must not stay behind
  const blocked = join(tmp, 'blocked');
  mkdirSync(join(blocked, 'inside'), { recursive: true });
  try {
    await writeFileAtomicAsync(blocked, 'data');
    assert.unreachable('rename over a folder should fail');
  } catch (e) {
    assert.not.instance(e, assert.Assertion);
  }
  try {
    writeFileAtomic(blocked, 'data');
    assert.unreachable('rename over a folder should fail');
  } catch (e) {
    assert.not.instance(e, assert.Assertion);
  }
  assert.equal(
    readdirSync(tmp).filter((f) => f.includes('.tmp')),
    [],
  );
});

test('withAtomicPath syncs what the callback wrote and renames it; removes it on error', async () => {
  const p = join(tmp, 'ckpt', 'epoch-1.ckpt');
  await withAtomicPath(p, async (t) => {
    writeFileAtomic(t, 'weights');
  });
  assert.is(readFileSync(p, 'utf8'), 'weights');
  try {
    await withAtomicPath(join(tmp, 'ckpt', 'bad.ckpt'), async (t) => {
      writeFileAtomic(t, 'half');
      throw new Error('save failed');
    });
    assert.unreachable();
  } catch (e) {
    assert.is((e as Error).message, 'save failed');
  }
  assert.equal(readdirSync(join(tmp, 'ckpt')), ['epoch-1.ckpt']);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
