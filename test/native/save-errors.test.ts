/**
 * A native save on a full disk: the promise rejects (NativeError ERR_IO naming the file and ENOSPC),
 * nothing appears under the final name, no temp file is left, and the process lives on. Before, torch's
 * zip writer threw inside its destructor and the process aborted (SIGABRT, exit 134) leaving a partial
 * file. Tested with the addon's write-failure switch (CXRMASK_FAULT_WRITE_BYTES) everywhere, and on a
 * real 3 MiB tmpfs where mounting one is permitted (root); that part is skipped elsewhere.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError, NativeError } from '../../ts/common/errors.js';
import { removeStaleTemps, saveCheckpoint } from '../../ts/common/io.js';
import { trainWithCheckpoints } from '../../ts/experiment/train.js';
import { Classifier } from '../../ts/model/classifier.js';
import { Segmenter } from '../../ts/model/segmenter.js';

import { MODEL_DIR, ROOT, requireModel, toyBatch } from './helpers.js';

/** `injected`: the failure came from CXRMASK_FAULT_WRITE_BYTES, and its message must say so (and only then). */
async function rejectsWithIo(p: Promise<unknown>, path: string, injected = true): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, NativeError);
    assert.is((e as NativeError).code, 'ERR_IO');
    assert.match((e as Error).message, /ENOSPC/);
    assert.is(
      (e as Error).message.includes('injected by CXRMASK_FAULT_WRITE_BYTES'),
      injected,
      (e as Error).message,
    );
    assert.ok((e as Error).message.includes(`cannot write ${path}: `), (e as Error).message);
    assert.not.match((e as Error).message, /\.tmp-/, 'the message names a temp file, not the path');
    return;
  }
  assert.unreachable('the save did not fail');
}

async function withFaultAfter<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
  process.env['CXRMASK_FAULT_WRITE_BYTES'] = String(bytes);
  try {
    return await fn();
  } finally {
    delete process.env['CXRMASK_FAULT_WRITE_BYTES'];
  }
}

test('a write failure rejects with ERR_IO, leaves nothing under the final name and no temp file', async () => {
  requireModel();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-full-'));
  const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 1 });
  try {
    const { x, y } = toyBatch(2, 224);
    await c.trainStep(x, 2, y);
    const path = join(dir, 'epoch-1.ckpt');
    for (const bytes of [0, 1000, 400_000]) {
      await withFaultAfter(bytes, () => rejectsWithIo(c.save(path), path));
      await withFaultAfter(bytes, () => rejectsWithIo(c.save(path, { weightsOnly: true }), path));
    }
    assert.equal(readdirSync(dir), [], 'a file was left behind');
    // The classifier is unharmed, and a later save works.
    await c.trainStep(x, 2, y);
    await c.save(path);
    assert.equal(readdirSync(dir), ['epoch-1.ckpt']);
    const back = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 2 });
    await back.load(path);
    assert.is(back.info.step, 2);
    await back.dispose();
  } finally {
    await c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Segmenter.save fails the same way: ERR_IO, nothing left', async () => {
  const segDir = process.env['CXRMASK_TEST_SEGMENTER'] ?? join(ROOT, 'models', 'seg-tiny');
  if (!existsSync(join(segDir, 'seg.pt')))
    throw new Error(`${segDir}/seg.pt missing: run bash scripts/setup.sh`);
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-full-'));
  const seg = await Segmenter.load(segDir, { device: 'cpu' });
  try {
    const path = join(dir, 'state-1.pt');
    await withFaultAfter(3000, () => rejectsWithIo(seg.save(path), path));
    await withFaultAfter(0, () => rejectsWithIo(seg.save(path, { weightsOnly: true }), path));
    assert.equal(readdirSync(dir), []);
    await seg.save(path);
    assert.equal(readdirSync(dir), ['state-1.pt']);
  } finally {
    await seg.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('saveCheckpoint: a failed native write becomes a DataError naming the final file', async () => {
  requireModel();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-full-'));
  const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 1 });
  try {
    const path = join(dir, 'cell', 'epoch-2.ckpt');
    try {
      await withFaultAfter(5000, () => saveCheckpoint(c, path));
      assert.unreachable('saveCheckpoint did not fail');
    } catch (e) {
      assert.instance(e, DataError);
      assert.is((e as DataError).reason, 'write-failed');
      assert.is((e as DataError).where.file, path);
      assert.match((e as Error).message, /ENOSPC/);
    }
    assert.equal(readdirSync(join(dir, 'cell')), []);
  } finally {
    await c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('training stops with a DataError naming the checkpoint; resume removes stale temp files and finishes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-full-run-'));
  const D = 6;
  const options = {
    dir,
    epochs: 1,
    batchSize: 4,
    seed: 0,
    trainIdx: Array.from({ length: 12 }, (_, i) => i),
    valIdx: Array.from({ length: 6 }, (_, i) => 12 + i),
    source: async (idx: number[]) => ({
      x: Float32Array.from(idx.flatMap((i) => Array.from({ length: D }, (_, j) => Math.cos(i + j)))),
      n: idx.length,
      labels: Float32Array.from(idx.flatMap((i) => [i % 2, 1, 0, (i >> 1) % 2, 0])),
      labelMask: new Float32Array(idx.length * 5).fill(1),
    }),
    selection: 'loss' as const,
  };
  const c = await Classifier.create({ inputDim: D, device: 'cpu', seed: 3 });
  try {
    try {
      await withFaultAfter(2000, () => trainWithCheckpoints(c, options));
      assert.unreachable('training went on after a failed checkpoint');
    } catch (e) {
      assert.instance(e, DataError);
      assert.is((e as DataError).reason, 'write-failed');
      assert.is((e as DataError).where.file, join(dir, 'best.ckpt'));
    }
    assert.equal(readdirSync(dir), [], 'a partial or temp file was left');
    // What a process killed mid-write leaves behind.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout;
    writeFileSync(join(dir, `epoch-1.ckpt.tmp-${dead}-12345678`), 'partial');
    const st = await trainWithCheckpoints(c, options);
    assert.ok(st.done);
    assert.equal(readdirSync(dir).sort(), ['best.ckpt', 'epoch-1.ckpt', 'state.json']);
  } finally {
    await c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CXRMASK_FAULT_WRITE_BYTES that is not a whole byte count is refused naming the variable, before anything is written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-fault-env-'));
  const c = await Classifier.create({ inputDim: 6, device: 'cpu', seed: 1 });
  const path = join(dir, 'best.ckpt');
  try {
    // strtoll read each of these as 0 (or 1): every save then failed with a false "No space left on device"
    for (const value of [
      'off',
      'no',
      'abc',
      '-1',
      '+5',
      ' 5',
      '5x',
      '1e3',
      '0x10',
      '99999999999999999999999',
    ]) {
      process.env['CXRMASK_FAULT_WRITE_BYTES'] = value;
      try {
        await c.save(path);
        assert.unreachable(`${value}: the save went ahead`);
      } catch (e) {
        assert.instance(e, NativeError, `${value}: ${String(e)}`);
        assert.is((e as NativeError).code, 'ERR_INVALID_ARG', value);
        assert.ok(
          (e as Error).message.includes(`CXRMASK_FAULT_WRITE_BYTES=${value} is not a byte count`),
          (e as Error).message,
        );
        assert.not.match((e as Error).message, /ENOSPC|No space/);
      } finally {
        delete process.env['CXRMASK_FAULT_WRITE_BYTES'];
      }
      assert.equal(readdirSync(dir), [], `${value}: a file was left`);
    }
    // empty is unset; a whole number injects its failure past that many bytes
    process.env['CXRMASK_FAULT_WRITE_BYTES'] = '';
    try {
      await c.save(path);
    } finally {
      delete process.env['CXRMASK_FAULT_WRITE_BYTES'];
    }
    assert.equal(readdirSync(dir), ['best.ckpt']);
    await withFaultAfter(0, () => rejectsWithIo(c.save(path), path));
  } finally {
    await c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a checkpoint name of up to 255 bytes is saved: the native temp name is cut to fit, never the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-long-ckpt-'));
  const c = await Classifier.create({ inputDim: 6, device: 'cpu', seed: 1 });
  try {
    for (const name of [`${'b'.repeat(250)}.ckpt`, `${'数'.repeat(83)}.pt`]) {
      const path = join(dir, name);
      await c.save(path);
      assert.equal(readdirSync(dir), [name]);
      const back = await Classifier.create({ inputDim: 6, device: 'cpu', seed: 2 });
      await back.load(path);
      await back.dispose();
      rmSync(path);
    }
  } finally {
    await c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('removeStaleTemps removes the temp files of dead processes only', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-stale-'));
  try {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    const deadPid = Number(dead.stdout);
    const files = [
      `epoch-2.ckpt.tmp-${deadPid}-0a1b2c3d`,
      `epoch-2.ckpt.tmp-${deadPid}`,
      `state.json.tmp-${process.pid}-deadbeef`,
      'epoch-1.ckpt',
      'notes.tmp-x',
    ];
    for (const f of files) writeFileSync(join(dir, f), 'x');
    mkdirSync(join(dir, `best.ckpt.tmp-${deadPid}-00ff00ff`));
    const removed = removeStaleTemps(dir).sort();
    assert.equal(removed, [`best.ckpt.tmp-${deadPid}-00ff00ff`, files[1], files[0]].sort());
    assert.equal(readdirSync(dir).sort(), [
      'epoch-1.ckpt',
      'notes.tmp-x',
      `state.json.tmp-${process.pid}-deadbeef`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a real full tmpfs: the save rejects, the process lives, nothing is left (root only)', async () => {
  requireModel();
  const mnt = mkdtempSync(join(tmpdir(), 'cxrmask-tmpfs-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (mount.status !== 0) {
    console.log(`  (skipped the tmpfs part: mount not permitted: ${(mount.stderr || '').trim()})`);
    rmSync(mnt, { recursive: true, force: true });
    return;
  }
  const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 1 });
  try {
    // Leave ~64 KiB free: far less than the ~3 MB a full checkpoint of the tiny model takes.
    const filler = join(mnt, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(8 * 1024 * 1024 - 64 * 1024));
    } catch {
      // the tmpfs is as full as it gets
    }
    const path = join(mnt, 'model.ckpt');
    await rejectsWithIo(c.save(path), path, false);
    assert.not.ok(existsSync(path));
    assert.equal(readdirSync(mnt), ['filler']);
    rmSync(filler);
    await c.save(path);
    assert.ok(existsSync(path));
  } finally {
    await c.dispose();
    spawnSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});

test.run();
