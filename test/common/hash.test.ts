/** One file hash, read in chunks, the same whether awaited or not. */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sha256, sha256File, sha256FileAsync } from '../../ts/common/hash.js';
import { rejects, tempDir } from '../data/helpers.js';

test('sha256FileAsync: the digest of the whole file, across chunk boundaries, empty files included', async () => {
  const dir = tempDir();
  // 16 MB chunks: one over the boundary, and a file that ends exactly on one
  for (const size of [0, 5, (16 << 20) + 3, 16 << 20]) {
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4093) bytes[i] = (i * 31) & 255;
    const p = join(dir, `f${size}`);
    writeFileSync(p, bytes);
    const want = createHash('sha256').update(bytes).digest('hex');
    assert.is(await sha256FileAsync(p), want, `${size} bytes`);
    assert.is(sha256File(p), want);
    assert.is(sha256(bytes), want);
  }
  mkdirSync(join(dir, 'folder'));
  await rejects(sha256FileAsync(join(dir, 'missing')), /ENOENT/);
  await rejects(sha256FileAsync(join(dir, 'folder')), /EISDIR/);
});

test.run();
