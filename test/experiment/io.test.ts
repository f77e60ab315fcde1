/** The one crash-safe write helper: parents made, temp removed on error, same helper from the data layer. */
import { spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { saveTarget } from '../../ts/common/files.js';
import { saveAtomic, withAtomicPath, writeFileAtomic, writeFileAtomicAsync } from '../../ts/common/io.js';

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
test('an atomic write syncs its folder, never what is below it: a FIFO in a subfolder does not block it', () => {
  const d = join(tmp, 'fifo-below');
  mkdirSync(join(d, 'sub'), { recursive: true });
  spawnSync('mkfifo', [join(d, 'sub', 'pipe')]);
  assert.ok(lstatSync(join(d, 'sub', 'pipe')).isFIFO());
  // in a child with a deadline: the old walk opened the FIFO and blocked forever
  const io = join(import.meta.dirname, '..', '..', 'ts', 'common', 'io.ts');
  const code = `const { writeFileAtomic } = await import(${JSON.stringify(io)}); writeFileAtomic(${JSON.stringify(join(d, 'out.json'))}, '{}');`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    timeout: 30_000,
    encoding: 'utf8',
  });
  assert.is(r.signal, null, 'the write blocked on the FIFO below its folder');
  assert.is(r.status, 0, r.stderr);
  assert.is(readFileSync(join(d, 'out.json'), 'utf8'), '{}');
});

test('saveAtomic writes through a link (the link stays), resolving `..` from the folder the link is in', async () => {
  // real/sub/link.ckpt -> ../x.ckpt, reached as alias/link.ckpt with alias -> real/sub: the kernel's
  // target is real/x.ckpt; resolving the spelling (alias/..) named another file
  const d = join(tmp, 'links');
  mkdirSync(join(d, 'real', 'sub'), { recursive: true });
  writeFileSync(join(d, 'real', 'x.ckpt'), 'old');
  symlinkSync('../x.ckpt', join(d, 'real', 'sub', 'link.ckpt'));
  symlinkSync(join(d, 'real', 'sub'), join(d, 'alias'));
  const path = join(d, 'alias', 'link.ckpt');
  assert.is(saveTarget(path), join(d, 'real', 'x.ckpt'));
  await saveAtomic(path, async (t) => writeFileSync(t, 'new'));
  assert.ok(lstatSync(join(d, 'real', 'sub', 'link.ckpt')).isSymbolicLink());
  assert.is(readFileSync(join(d, 'real', 'x.ckpt'), 'utf8'), 'new');
  assert.not.ok(readdirSync(d).includes('x.ckpt'));
  // a FIFO at a checkpoint path is refused, not replaced
  spawnSync('mkfifo', [join(d, 'best.pt')]);
  try {
    await saveAtomic(join(d, 'best.pt'), async (t) => writeFileSync(t, 'x'));
    assert.unreachable('a FIFO was replaced by a checkpoint');
  } catch (e) {
    assert.match((e as Error).message, /best\.pt/);
  }
  assert.ok(lstatSync(join(d, 'best.pt')).isFIFO());
});

test.run();
