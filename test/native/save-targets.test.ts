/**
 * What a save may write over. The atomic save renames a temp file over its path: before, that replaced a
 * symlink (its target kept stale contents), a FIFO, and once /dev/null (run as root). Now a save writes
 * through a symlink to its target, refuses a FIFO, device or folder as load does (DataError
 * not-a-file), and a path holding a NUL (the addon's C string ended there: 'a\0b.ckpt' wrote 'a').
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError, type NativeError } from '../../ts/common/errors.js';
import { withAtomicPath } from '../../ts/common/io.js';
import { Classifier } from '../../ts/model/classifier.js';
import { Segmenter } from '../../ts/model/segmenter.js';
import { loadNative } from '../../ts/native.js';
import { RAW_HEAD_OPTIONS, ROOT } from './helpers.js';

const SEG_DIR = process.env['CXRMASK_TEST_SEGMENTER'] ?? join(ROOT, 'models', 'seg-tiny');

let dir: string;
let clf: Classifier;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cxrmask-save-targets-'));
  clf = await Classifier.create({ inputDim: 8, device: 'cpu', seed: 1 });
});

test.after(async () => {
  await clf.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function notAFile(p: Promise<unknown>, file: string, kind: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, DataError);
    assert.is((e as DataError).reason, 'not-a-file');
    assert.is((e as DataError).where.file, file);
    assert.match((e as Error).message, kind);
    assert.match((e as Error).message, /refusing to write over it/);
    return;
  }
  assert.unreachable('the save went ahead');
}

const mkfifo = (p: string) => execFileSync('mkfifo', [p]);

test('a FIFO or a folder at the path is refused, and stays as it was', async () => {
  const fifo = join(dir, 'fifo.ckpt');
  mkfifo(fifo);
  await notAFile(clf.save(fifo), fifo, /a FIFO/);
  await notAFile(clf.save(fifo, { weightsOnly: true }), fifo, /a FIFO/);
  assert.ok(lstatSync(fifo).isFIFO());
  const folder = join(dir, 'folder.ckpt');
  mkdirSync(folder);
  await notAFile(clf.save(folder), folder, /a folder/);
  assert.ok(statSync(folder).isDirectory());
  assert.equal(readdirSync(dir).sort(), ['fifo.ckpt', 'folder.ckpt'], 'a temp file was left');
});

test('a character device is refused (/dev/null once became a 7955-byte file)', async () => {
  if (!existsSync('/dev/null')) return;
  await notAFile(clf.save('/dev/null'), '/dev/null', /a character device/);
  assert.ok(lstatSync('/dev/null').isCharacterDevice());
});

test('a symlink is written through: the link stays, its target gets the checkpoint', async () => {
  const store = join(dir, 'store');
  mkdirSync(store);
  const target = join(store, 'real.ckpt');
  writeFileSync(target, 'old');
  const link = join(dir, 'link.ckpt');
  symlinkSync(target, link);
  // a chain, with a relative link: both end at the same file
  const chain = join(dir, 'chain.ckpt');
  symlinkSync('link.ckpt', chain);
  await clf.trainStep(new Float32Array(8).fill(0.5), 1, Float32Array.of(1, 0, 1, 0, 1));
  await clf.save(chain);
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.ok(lstatSync(chain).isSymbolicLink());
  assert.is(readlinkSync(chain), 'link.ckpt');
  assert.is.not(readFileSync(target, 'utf8'), 'old');
  const h = await Classifier.readHeader(link);
  assert.is(h.step, 1);
  assert.equal(readdirSync(store), ['real.ckpt'], 'a temp file was left beside the target');
  // the saved state loads back through the link
  const back = await Classifier.create({ inputDim: 8, device: 'cpu', seed: 2 });
  try {
    await back.load(link);
    const x = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
    assert.equal(await back.predict(x, 2), await clf.predict(x, 2));
  } finally {
    await back.dispose();
  }
});

test('a link to a missing file creates it; a link to a FIFO and a loop of links are refused', async () => {
  const sub = mkdtempSync(join(dir, 'links-'));
  const dangling = join(sub, 'dangling.ckpt');
  symlinkSync(join(sub, 'later.ckpt'), dangling);
  await clf.save(dangling, { weightsOnly: true });
  assert.ok(lstatSync(dangling).isSymbolicLink());
  assert.ok(lstatSync(join(sub, 'later.ckpt')).isFile());
  assert.is((await Classifier.readHeader(dangling)).weightsOnly, true);

  const fifo = join(sub, 'fifo');
  mkfifo(fifo);
  const toFifo = join(sub, 'to-fifo.ckpt');
  symlinkSync(fifo, toFifo);
  await notAFile(clf.save(toFifo), fifo, /a FIFO/);
  assert.ok(lstatSync(toFifo).isSymbolicLink());
  assert.ok(lstatSync(fifo).isFIFO());

  const a = join(sub, 'a.ckpt');
  const b = join(sub, 'b.ckpt');
  symlinkSync(b, a);
  symlinkSync(a, b);
  await notAFile(clf.save(a), a, /more than 40 symbolic links/);
  assert.ok(lstatSync(a).isSymbolicLink() && lstatSync(b).isSymbolicLink());
});

test('Segmenter.save: the same refusals and the same write-through', async () => {
  if (!existsSync(join(SEG_DIR, 'seg.pt')))
    throw new Error(`${SEG_DIR}/seg.pt missing: run bash scripts/setup.sh`);
  const seg = await Segmenter.load(SEG_DIR, { device: 'cpu' });
  const sub = mkdtempSync(join(dir, 'seg-'));
  try {
    const fifo = join(sub, 'fifo.pt');
    mkfifo(fifo);
    await notAFile(seg.save(fifo), fifo, /a FIFO/);
    assert.ok(lstatSync(fifo).isFIFO());
    const target = join(sub, 'real.pt');
    writeFileSync(target, 'old');
    const link = join(sub, 'link.pt');
    symlinkSync(target, link);
    await seg.save(link);
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.is.not(readFileSync(target, 'utf8').slice(0, 3), 'old');
    await seg.load(link);
    assert.equal(readdirSync(sub).sort(), ['fifo.pt', 'link.pt', 'real.pt']);
  } finally {
    await seg.dispose();
  }
});

test('a FIFO or folder put at the path after save() is called is not replaced: before the queued save starts, and during the write (checked again before the rename)', async () => {
  const sub = mkdtempSync(join(dir, 'swap-'));
  for (const [kind, swap] of [
    ['a FIFO', mkfifo],
    ['a folder', (p: string) => mkdirSync(p)],
  ] as const) {
    const p = join(sub, kind === 'a FIFO' ? 'fifo.ckpt' : 'folder.ckpt');
    // checked at the call (nothing there yet); the swap lands before the queued save's own check runs
    const saving = clf.save(p);
    swap(p);
    await notAFile(saving, p, new RegExp(kind));
    // during the write: the swap after the addon has written, caught only by the check just before
    // the rename
    const q = join(sub, `late-${kind === 'a FIFO' ? 'fifo' : 'folder'}.ckpt`);
    await notAFile(
      withAtomicPath(q, async (tmp) => {
        await clf.save(tmp, { weightsOnly: true });
        swap(q);
      }),
      q,
      new RegExp(kind),
    );
  }
  assert.ok(lstatSync(join(sub, 'fifo.ckpt')).isFIFO() && lstatSync(join(sub, 'late-fifo.ckpt')).isFIFO());
  assert.ok(statSync(join(sub, 'folder.ckpt')).isDirectory());
  assert.equal(readdirSync(join(sub, 'folder.ckpt')), []);
  assert.equal(
    readdirSync(sub).sort(),
    ['fifo.ckpt', 'folder.ckpt', 'late-fifo.ckpt', 'late-folder.ckpt'],
    'a temp file was left',
  );
});

test('the addon refuses a non-regular file at write time too (a path that changed, a direct call)', async () => {
  // Classifier.save hands the addon a resolved path; a raw call with a link or FIFO is refused there.
  const raw = await loadNative().Classifier.create(RAW_HEAD_OPTIONS);
  const sub = mkdtempSync(join(dir, 'raw-'));
  try {
    const target = join(sub, 'real.ckpt');
    writeFileSync(target, 'old');
    const link = join(sub, 'link.ckpt');
    symlinkSync(target, link);
    const fifo = join(sub, 'fifo.ckpt');
    mkfifo(fifo);
    for (const p of [link, fifo]) {
      try {
        await raw.save(p, false);
        assert.unreachable(`the addon wrote over ${p}`);
      } catch (e) {
        assert.instance(e, Error);
        assert.is((e as NativeError).code, 'ERR_INVALID_ARG');
        assert.is((e as Error).message, `${p} is not a regular file; refusing to write over it`);
      }
    }
    assert.ok(lstatSync(link).isSymbolicLink() && lstatSync(fifo).isFIFO());
    assert.is(readFileSync(target, 'utf8'), 'old');
    assert.equal(readdirSync(sub).sort(), ['fifo.ckpt', 'link.ckpt', 'real.ckpt']);
  } finally {
    raw.dispose();
  }
});

test("a path with a NUL is refused (it was cut at the NUL: 'a\\0b.ckpt' wrote 'a')", async () => {
  const p = join(dir, 'a\0b.ckpt');
  for (const call of [() => clf.save(p), () => clf.load(p), () => Classifier.readHeader(p)]) {
    assert.throws(
      call,
      (e: Error) => e instanceof TypeError && e.message === 'path must not contain a NUL character',
    );
  }
  // the addon refuses it too, whatever calls it
  try {
    await loadNative().Classifier.readHeader(p);
    assert.unreachable('the addon took a NUL path');
  } catch (e) {
    assert.instance(e, TypeError);
    assert.is((e as NativeError).code, 'ERR_INVALID_ARG');
    assert.is((e as Error).message, 'path must not contain a NUL character');
  }
  assert.not.ok(existsSync(join(dir, 'a')));
});

test("save(path, { weightsOnly: 'yes' }) is refused: it wrote the full state before", async () => {
  const p = join(dir, 'flag.ckpt');
  for (const v of ['yes', 1, 'false']) {
    assert.throws(
      () => clf.save(p, { weightsOnly: v as never }),
      (e: Error) =>
        e instanceof TypeError &&
        /^Classifier\.save option 'weightsOnly': weightsOnly must be a boolean, got /.test(e.message),
    );
  }
  assert.not.ok(existsSync(p));
  await clf.save(p, { weightsOnly: false });
  assert.is((await Classifier.readHeader(p)).weightsOnly, false);
});

test("save(path, { links: 'replace' }) (a run's own folder) replaces a link with the file, its target untouched; another policy is refused", async () => {
  const sub = mkdtempSync(join(dir, 'replace-'));
  const theirs = join(sub, 'theirs.ckpt');
  writeFileSync(theirs, 'theirs');
  const seg = await Segmenter.load(SEG_DIR, { device: 'cpu' });
  try {
    for (const [name, save] of [
      ['clf.ckpt', (p: string) => clf.save(p, { links: 'replace' })],
      ['seg.pt', (p: string) => seg.save(p, { links: 'replace', weightsOnly: true })],
    ] as const) {
      const p = join(sub, name);
      symlinkSync(theirs, p);
      await save(p);
      assert.ok(lstatSync(p).isFile(), `${name} is still a link`);
      assert.is(readFileSync(theirs, 'utf8'), 'theirs');
    }
    await seg.load(join(sub, 'seg.pt'));
    assert.is((await Classifier.readHeader(join(sub, 'clf.ckpt'))).weightsOnly, false);
    assert.equal(readdirSync(sub).sort(), ['clf.ckpt', 'seg.pt', 'theirs.ckpt']);
    assert.throws(
      () => clf.save(join(sub, 'x.ckpt'), { links: 'ignore' as never }),
      (e: Error) => e instanceof RangeError && /^Classifier\.save option 'links': /.test(e.message),
    );
  } finally {
    await seg.dispose();
  }
});

test.run();
