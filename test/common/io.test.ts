/** The one crash-safe write helper: parents made, temp removed on error, same helper from the data layer. */
import { spawn, spawnSync } from 'node:child_process';
import fs, {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { DataError } from '../../ts/common/errors.js';
import { recheckSaveTarget, refuseLinkedFolders, saveTarget } from '../../ts/common/files.js';
import {
  type AtomicWriteOptions,
  readBinaryFileSync,
  readJson,
  removeStaleTemps,
  saveCheckpoint,
  tempOwner,
  tmpPathFor,
  withAtomicPath,
  writeFileAtomic,
  writeFileAtomicAsync,
  writeFilesAtomic,
  writeJsonAtomic,
} from '../../ts/common/io.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-io-'));

/** Runs `write`, expecting a DataError of `reason` naming `file`. */
async function refused(write: () => unknown, reason: string, file: string, kind: RegExp): Promise<void> {
  try {
    await write();
  } catch (e) {
    assert.instance(e, DataError, String(e));
    assert.is((e as DataError).reason, reason);
    assert.is((e as DataError).where.file, file);
    assert.match((e as Error).message, kind);
    return;
  }
  assert.unreachable('the write went ahead');
}

test('writeFileAtomicAsync (mkdir -p, no temp left on error)', async () => {
  const deep = join(tmp, 'a', 'b', 'c.json');
  await writeFileAtomicAsync(deep, '{"x":1}\n');
  assert.is(readFileSync(deep, 'utf8'), '{"x":1}\n');
  // a folder at the path is refused before any temp file is made, and none stays behind
  const blocked = join(tmp, 'blocked');
  mkdirSync(join(blocked, 'inside'), { recursive: true });
  await refused(() => writeFileAtomicAsync(blocked, 'data'), 'not-a-file', blocked, /a folder/);
  await refused(() => writeFileAtomic(blocked, 'data'), 'not-a-file', blocked, /a folder/);
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

test('withAtomicPath following links writes through a link (the link stays), resolving `..` from the folder the link is in', async () => {
  // real/sub/link.ckpt -> ../x.ckpt, reached as alias/link.ckpt with alias -> real/sub: the kernel's
  // target is real/x.ckpt; resolving the spelling (alias/..) named another file
  const d = join(tmp, 'links');
  mkdirSync(join(d, 'real', 'sub'), { recursive: true });
  writeFileSync(join(d, 'real', 'x.ckpt'), 'old');
  symlinkSync('../x.ckpt', join(d, 'real', 'sub', 'link.ckpt'));
  symlinkSync(join(d, 'real', 'sub'), join(d, 'alias'));
  const path = join(d, 'alias', 'link.ckpt');
  assert.is(saveTarget(path, 'follow'), join(d, 'real', 'x.ckpt'));
  assert.is(saveTarget(path), path);
  await withAtomicPath(path, async (t) => writeFileSync(t, 'new'), { links: 'follow' });
  assert.ok(lstatSync(join(d, 'real', 'sub', 'link.ckpt')).isSymbolicLink());
  assert.is(readFileSync(join(d, 'real', 'x.ckpt'), 'utf8'), 'new');
  assert.not.ok(readdirSync(d).includes('x.ckpt'));
  // a FIFO at a checkpoint path is refused, not replaced
  spawnSync('mkfifo', [join(d, 'best.pt')]);
  try {
    await withAtomicPath(join(d, 'best.pt'), async (t) => writeFileSync(t, 'x'));
    assert.unreachable('a FIFO was replaced by a checkpoint');
  } catch (e) {
    assert.match((e as Error).message, /best\.pt/);
  }
  assert.ok(lstatSync(join(d, 'best.pt')).isFIFO());
});

type Writer = (p: string, text: string, o?: AtomicWriteOptions) => unknown;
const WRITERS: [string, Writer][] = [
  ['writeFileAtomic', (p, text, o) => writeFileAtomic(p, text, o)],
  ['writeFileAtomicAsync', (p, text, o) => writeFileAtomicAsync(p, text, o)],
  ['writeJsonAtomic', (p, text, o) => writeJsonAtomic(p, text, o)],
  ['withAtomicPath', (p, text, o) => withAtomicPath(p, async (t) => writeFileSync(t, text), o)],
];
const MODES: AtomicWriteOptions[] = [{}, { links: 'replace' }, { links: 'follow' }];

test("links: 'follow' (a path the caller named) writes through a link (--out -> a shared file): the link stays, its target is updated", async () => {
  const d = join(tmp, 'results-links');
  mkdirSync(join(d, 'shared'), { recursive: true });
  mkdirSync(join(d, 'run'));
  for (const [name, write] of WRITERS) {
    const real = join(d, 'shared', `${name}.json`);
    writeFileSync(real, 'old');
    const link = join(d, 'run', `${name}.json`);
    symlinkSync(join('..', 'shared', `${name}.json`), link);
    await write(link, name, { links: 'follow' });
    assert.ok(lstatSync(link).isSymbolicLink(), `${name} replaced the link`);
    assert.is(readFileSync(real, 'utf8'), name === 'writeJsonAtomic' ? `"${name}"\n` : name, name);
  }
  assert.equal(readdirSync(join(d, 'run')).sort(), WRITERS.map(([n]) => `${n}.json`).sort());
  assert.equal(
    readdirSync(join(d, 'shared')).sort(),
    WRITERS.map(([n]) => `${n}.json`).sort(),
    'a temp file was left',
  );
});

test('by default (a file a run or cache writes in its own folder) a link at the path is replaced and its target left alone', async () => {
  const d = join(tmp, 'planted-links');
  mkdirSync(join(d, 'run'), { recursive: true });
  const victim = join(d, 'my-notes.txt');
  writeFileSync(victim, 'precious');
  for (const [name, write] of WRITERS)
    for (const [i, o] of [{}, { links: 'replace' } as const].entries()) {
      const link = join(d, 'run', `${name}-${i}.json`);
      symlinkSync(victim, link);
      await write(link, name, o);
      assert.ok(lstatSync(link).isFile(), `${name} kept the link`);
      assert.is(readFileSync(link, 'utf8'), name === 'writeJsonAtomic' ? `"${name}"\n` : name, name);
    }
  assert.is(readFileSync(victim, 'utf8'), 'precious');
  assert.equal(readdirSync(d).sort(), ['my-notes.txt', 'run'], 'a temp file was left beside the target');
  assert.is(readdirSync(join(d, 'run')).length, 2 * WRITERS.length, 'a temp file was left');
});

test('every atomic writer, in both link modes, refuses a FIFO, a device or a folder at the path (or through a followed link), leaving it as it was', async () => {
  const d = join(tmp, 'non-files');
  mkdirSync(d);
  const fifo = join(d, 'results.json');
  spawnSync('mkfifo', [fifo]);
  const folder = join(d, 'table2.md');
  mkdirSync(folder);
  const toFifo = join(d, 'report.html');
  symlinkSync('results.json', toFifo);
  // a device of our own (root only), never /dev/null itself: the old writers renamed over it
  const dev = join(d, 'null');
  const haveDev = spawnSync('mknod', [dev, 'c', '1', '3']).status === 0;
  for (const [name, write] of WRITERS)
    for (const o of MODES) {
      await refused(() => write(fifo, 'x', o), 'not-a-file', fifo, /a FIFO/);
      await refused(() => write(folder, 'x', o), 'not-a-file', folder, /a folder/);
      if (o.links === 'follow') await refused(() => write(toFifo, 'x', o), 'not-a-file', fifo, /a FIFO/);
      if (haveDev) await refused(() => write(dev, name, o), 'not-a-file', dev, /a character device/);
    }
  assert.ok(
    lstatSync(fifo).isFIFO() && lstatSync(toFifo).isSymbolicLink() && lstatSync(folder).isDirectory(),
  );
  if (haveDev) assert.ok(lstatSync(dev).isCharacterDevice());
  assert.equal(
    readdirSync(d).sort(),
    [...(haveDev ? ['null'] : []), 'report.html', 'results.json', 'table2.md'],
    'a temp file was left',
  );
});

test('recheckSaveTarget: passes while the path leads where the write began; a FIFO, folder or re-pointed link put there since is refused', () => {
  const d = join(tmp, 'recheck');
  mkdirSync(d);
  const p = join(d, 'out.json');
  recheckSaveTarget(p, saveTarget(p)); // missing: created by the rename
  writeFileSync(p, 'x');
  recheckSaveTarget(p, p);
  rmSync(p);
  spawnSync('mkfifo', [p]);
  assert.throws(
    () => recheckSaveTarget(p, p),
    (e: Error) => e instanceof DataError && e.reason === 'not-a-file' && /a FIFO/.test(e.message),
  );
  rmSync(p);
  mkdirSync(p);
  assert.throws(
    () => recheckSaveTarget(p, p),
    (e: Error) => e instanceof DataError && e.reason === 'not-a-file',
  );
  rmSync(p, { recursive: true });
  writeFileSync(join(d, 'a.json'), 'a');
  writeFileSync(join(d, 'b.json'), 'b');
  symlinkSync('a.json', p);
  recheckSaveTarget(p, join(d, 'a.json'), 'follow');
  recheckSaveTarget(p, p); // replaced: the link is the target
  rmSync(p);
  symlinkSync('b.json', p);
  assert.throws(
    () => recheckSaveTarget(p, join(d, 'a.json'), 'follow'),
    (e: Error) =>
      e instanceof DataError &&
      e.reason === 'target-changed' &&
      e.message ===
        `${p}: now leads to ${join(d, 'b.json')}, not to ${join(d, 'a.json')} as when the write began; refusing to write over it`,
  );
  // a plain file in place of the link: the write would replace the file, not the link's target
  rmSync(p);
  writeFileSync(p, 'plain');
  assert.throws(
    () => recheckSaveTarget(p, join(d, 'a.json'), 'follow'),
    (e: Error) => (e as DataError).reason === 'target-changed',
  );
});

/**
 * writeFileAtomicAsync with `swap` run once its temp file is open (another process, during the write):
 * fs/promises `open` wrapped for the one call, its ESM binding in io.ts updated to match.
 */
async function writeAsyncSwapping(p: string, text: string, o: AtomicWriteOptions, swap: () => void) {
  const real = fsp.open;
  fsp.open = (async (...a: Parameters<typeof real>) => {
    const fh = await real(...a);
    swap();
    return fh;
  }) as typeof real;
  syncBuiltinESMExports();
  try {
    await writeFileAtomicAsync(p, text, o);
  } finally {
    fsp.open = real;
    syncBuiltinESMExports();
  }
}

const SWAPPING_WRITERS: [string, (p: string, o: AtomicWriteOptions, swap: () => void) => Promise<void>][] = [
  [
    'withAtomicPath',
    (p, o, swap) =>
      withAtomicPath(
        p,
        async (t) => {
          writeFileSync(t, 'weights');
          swap();
        },
        o,
      ),
  ],
  ['writeFileAtomicAsync', (p, o, swap) => writeAsyncSwapping(p, 'weights', o, swap)],
];

test('the path is checked again before the rename: a FIFO or folder put there during the write is refused in both link modes, a link is refused when following and replaced otherwise', async () => {
  const d = join(tmp, 'swapped');
  mkdirSync(d);
  writeFileSync(join(d, 'elsewhere.ckpt'), 'theirs');
  const swaps: [string, (p: string) => void, (p: string) => boolean][] = [
    ['a FIFO', (p) => spawnSync('mkfifo', [p]), (p) => lstatSync(p).isFIFO()],
    ['a folder', (p) => mkdirSync(p), (p) => lstatSync(p).isDirectory()],
    ['a link', (p) => symlinkSync('elsewhere.ckpt', p), (p) => lstatSync(p).isSymbolicLink()],
  ];
  const names: string[] = [];
  for (const [w, write] of SWAPPING_WRITERS)
    for (const o of MODES)
      for (const [kind, swap, still] of swaps) {
        const name = `${w}-${o.links ?? 'default'}-${kind.slice(2)}.ckpt`;
        const p = join(d, name);
        names.push(name);
        let swapped = false;
        const go = () =>
          write(p, o, () => {
            swap(p);
            swapped = true;
          });
        if (kind === 'a link' && o.links !== 'follow') {
          await go(); // the link is replaced, its target untouched
          assert.ok(swapped && lstatSync(p).isFile(), `${name}: the link was kept`);
          assert.is(readFileSync(p, 'utf8'), 'weights');
          continue;
        }
        await refused(
          go,
          kind === 'a link' ? 'target-changed' : 'not-a-file',
          p,
          kind === 'a link' ? /now leads to/ : new RegExp(kind),
        );
        assert.ok(swapped && still(p), `${name}: ${kind} was replaced`);
      }
  assert.is(readFileSync(join(d, 'elsewhere.ckpt'), 'utf8'), 'theirs');
  assert.equal(readdirSync(d).sort(), ['elsewhere.ckpt', ...names].sort(), 'a temp file was left');
});

test('refuseLinkedFolders: a symlinked folder inside an owned folder is refused, named, at any depth; the owned folder itself may be a link', async () => {
  const d = join(tmp, 'owned');
  const elsewhere = join(d, 'elsewhere');
  const disk = join(d, 'disk');
  mkdirSync(join(elsewhere, 'x'), { recursive: true });
  mkdirSync(join(disk, 'run', 'cells', 'a'), { recursive: true });
  writeFileSync(join(disk, 'run', 'cells', 'a', 'state.json'), '{}');
  // `runs` on another disk: the root is a link, nothing inside it is
  symlinkSync(disk, join(d, 'runs'));
  const run = join(d, 'runs', 'run');
  refuseLinkedFolders(run, 'run folder');
  refuseLinkedFolders(join(d, 'runs'), 'cache folder', run);
  // a link to a file, or a dangling one, leads no write of a folder below it elsewhere
  symlinkSync(join(elsewhere, 'notes.txt'), join(run, 'table2.md'));
  symlinkSync(join(d, 'missing'), join(run, 'cells', 'gone'));
  refuseLinkedFolders(run, 'run folder');
  for (const [at, rootOf] of [
    [join(run, 'cells', 'b'), run],
    [join(run, 'cells', 'a', 'sub'), run],
  ] as const) {
    symlinkSync(elsewhere, at);
    await refused(
      () => refuseLinkedFolders(rootOf, 'run folder'),
      'linked-folder',
      at,
      new RegExp(
        `a symbolic link to a folder \\(-> ${elsewhere}\\) inside the run folder ${run}: .*refusing to write`,
      ),
    );
    rmSync(at);
  }
  // the way out the message gives: link the owned folder itself (or its parent), as `runs` is here
  await refused(
    () => {
      symlinkSync(elsewhere, join(run, 'cells', 'c'));
      try {
        refuseLinkedFolders(run, 'run folder');
      } finally {
        rmSync(join(run, 'cells', 'c'));
      }
    },
    'linked-folder',
    join(run, 'cells', 'c'),
    /To keep the run folder on another disk, link the run folder itself, or the folder holding it, instead/,
  );
  // a link to a folder inside the root (by its real path) keeps the writes inside: it passes, named
  // through the linked root or relatively; one climbing out of the root does not
  symlinkSync(join(run, 'cells', 'a'), join(run, 'cells', 'latest'));
  symlinkSync('a', join(run, 'cells', 'rel'));
  symlinkSync('..', join(run, 'cells', 'a', 'up'));
  refuseLinkedFolders(run, 'run folder');
  symlinkSync('../..', join(run, 'cells', 'out'));
  await refused(
    () => refuseLinkedFolders(run, 'run folder'),
    'linked-folder',
    join(run, 'cells', 'out'),
    /-> \.\.\/\.\./,
  );
  for (const l of ['latest', 'rel', 'out', 'a/up']) rmSync(join(run, 'cells', l));
  // between root and sub: the settings folder of a cache planted as a link
  const cache = join(d, 'cache');
  mkdirSync(cache);
  symlinkSync(elsewhere, join(cache, 'key'));
  await refused(
    () => refuseLinkedFolders(cache, 'cache folder', join(cache, 'key')),
    'linked-folder',
    join(cache, 'key'),
    /inside the cache folder/,
  );
  refuseLinkedFolders(cache, 'cache folder', join(cache, 'other-key')); // missing: created later
  assert.equal(readdirSync(elsewhere), ['x'], 'nothing written to the link target');
});

test('readJson: a FIFO, a folder or a truncated file in place of a JSON file is a DataError naming it (a FIFO used to block forever)', async () => {
  const dir = join(tmp, 'read-json');
  mkdirSync(dir);
  const fifo = join(dir, 'result.json');
  spawnSync('mkfifo', [fifo]);
  // a writer at the other end, so that a read of the FIFO returns instead of blocking this test
  const writer = spawn('sh', ['-c', 'printf "{}" > "$0"', fifo], { stdio: 'ignore' });
  try {
    await refused(
      () => readJson(fifo),
      'not-a-file',
      fifo,
      /not a regular file \(a FIFO\); refusing to read it/,
    );
  } finally {
    writer.kill();
  }
  const folder = join(dir, 'results.json');
  mkdirSync(folder);
  await refused(() => readJson(folder), 'not-a-file', folder, /not a regular file \(a folder\)/);
  const truncated = join(dir, 'data.json');
  writeFileSync(truncated, '{"fingerprint": ');
  await refused(
    () => readJson(truncated),
    'bad-json',
    truncated,
    new RegExp(`^${truncated}: cannot read: .*JSON`),
  );
  assert.is(readJson(join(dir, 'absent.json')), null);
});

test("saveCheckpoint: a model whose save writes plainly (a user's backend) is staged and renamed here; a planted link is replaced, its target untouched", async () => {
  const d = mkdtempSync(join(tmp, 'ckpt-'));
  writeFileSync(join(d, 'theirs.txt'), 'theirs');
  symlinkSync(join(d, 'theirs.txt'), join(d, 'best.ckpt')); // planted in a received run folder
  const calls: string[] = [];
  const plain = {
    async save(p: string, o: { weightsOnly?: boolean }) {
      calls.push(p);
      writeFileSync(p, `weights ${o.weightsOnly}`);
    },
  };
  await saveCheckpoint(plain, join(d, 'best.ckpt'), { weightsOnly: true });
  assert.is(lstatSync(join(d, 'best.ckpt')).isSymbolicLink(), false);
  assert.is(readFileSync(join(d, 'best.ckpt'), 'utf8'), 'weights true');
  assert.is(readFileSync(join(d, 'theirs.txt'), 'utf8'), 'theirs');
  assert.is(calls.length, 1);
  assert.ok(calls[0] !== join(d, 'best.ckpt'), 'a temp path, not the final one');
  assert.equal(readdirSync(d).sort(), ['best.ckpt', 'theirs.txt'], 'no temp left');
  // a failed plain save leaves nothing at the final name
  const failing = {
    async save(p: string) {
      writeFileSync(p, 'half');
      throw new Error('disk gone');
    },
  };
  await saveCheckpoint(failing, join(d, 'epoch-1.ckpt')).then(
    () => assert.unreachable('did not fail'),
    (e: Error) => assert.match(e.message, 'disk gone'),
  );
  assert.equal(readdirSync(d).sort(), ['best.ckpt', 'theirs.txt']);
  // a model that says it saves atomically is called once, at the final path, told to replace links
  const own: { path: string; o: unknown }[] = [];
  const atomic = {
    savesAtomically: true,
    async save(path: string, o: unknown) {
      own.push({ path, o });
    },
  };
  await saveCheckpoint(atomic, join(d, 'epoch-2.ckpt'));
  assert.equal(own, [{ path: join(d, 'epoch-2.ckpt'), o: { links: 'replace' } }]);
});

test("removeStaleTemps: this host's temp of a dead pid is removed; another host's (its pid not ours to check, a writer on a shared disk) is kept", () => {
  const dir = mkdtempSync(join(tmp, 'stale-'));
  const dead = spawnSync(process.execPath, ['-e', '']).pid!; // exited: its pid names no local process
  const ours = basename(tmpPathFor(join(dir, 'shard-00001.bin')));
  assert.match(
    ours,
    new RegExp(`^shard-00001\\.bin\\.tmp-${process.pid}-[0-9a-f]{8}@`),
    'temps carry the host',
  );
  const host = ours.slice(ours.indexOf('@') + 1);
  assert.ok(host.length > 0);
  const names = {
    oursDead: `shard-00001.bin.tmp-${dead}-0a1b2c3d@${host}`,
    otherHostDead: `shard-00001.bin.tmp-${dead}-0a1b2c3d@not-${host}`,
    oldFormatDead: `shard-00002.bin.tmp-${dead}-0a1b2c3d`,
    oursLive: `shard-00003.bin.tmp-${process.pid}-0a1b2c3d@${host}`,
  };
  for (const f of Object.values(names)) writeFileSync(join(dir, f), 'x');
  assert.equal(removeStaleTemps(dir).sort(), [names.oldFormatDead, names.oursDead].sort());
  assert.equal(readdirSync(dir).sort(), [names.otherHostDead, names.oursLive].sort());
});

test('a file name of up to 255 bytes is written by every atomic writer: the temp name is cut to fit, never the file', async () => {
  const d = mkdtempSync(join(tmp, 'long-'));
  // ASCII, and multi-byte names whose cut must fall between characters
  const names = [
    `${'b'.repeat(236)}.png`,
    `${'b'.repeat(250)}.json`,
    `${'é'.repeat(125)}.png`,
    `${'数'.repeat(83)}.ckpt`,
  ];
  for (const name of names) {
    assert.ok(Buffer.byteLength(name) > 200 && Buffer.byteLength(name) <= 255, name);
    const p = join(d, name);
    writeFileAtomic(p, 'sync');
    assert.is(readFileSync(p, 'utf8'), 'sync');
    await writeFileAtomicAsync(p, 'async');
    assert.is(readFileSync(p, 'utf8'), 'async');
    await withAtomicPath(p, async (t) => writeFileSync(t, 'staged'));
    assert.is(readFileSync(p, 'utf8'), 'staged');
    rmSync(p);
  }
  assert.equal(readdirSync(d), [], 'a temp file was left');
});

test("a temp name of a long file and a 64-byte host fits 255 bytes and still reads back as the writer's pid and host", () => {
  const cloud = 'ip-10-0-12-34.eu-west-1.compute.internal.';
  const host = cloud + 'h'.repeat(64 - cloud.length);
  assert.is(host.length, 64); // the longest host name Linux allows
  for (const name of [`${'b'.repeat(240)}.png`, `${'ü'.repeat(120)}.json`, 'x.png']) {
    const t = basename(tmpPathFor(join(tmp, 'any', name), host));
    assert.ok(Buffer.byteLength(t) <= 255, `${Buffer.byteLength(t)} bytes`);
    assert.is(Buffer.from(t).toString(), t, 'cut inside a character');
    assert.ok(name.startsWith(t.slice(0, t.indexOf('.tmp-'))), 'the temp starts with the file name');
    assert.equal(tempOwner(t), { pid: process.pid, host });
  }
  // a short name is kept whole
  assert.match(basename(tmpPathFor(join(tmp, 'x.png'))), /^x\.png\.tmp-\d+-[0-9a-f]{8}@/);
  assert.equal(tempOwner('epoch-2.ckpt.tmp-42-0a1b2c3d'), { pid: 42, host: null });
  assert.is(tempOwner('notes.tmp-x'), null);
  // the addon's own temp beside the tmpPathFor path a save hands it: the same process wrote both
  assert.equal(tempOwner(`best.ckpt.tmp-42-58118e8a@${host}.tmp-42-deadbeef`), { pid: 42, host });
  assert.equal(tempOwner('best.ckpt.tmp-42-58118e8a.tmp-42-deadbeef'), { pid: 42, host: null });
  // a host name holding `.tmp-<digits>` is still the host (its digits are not a pid), nested or not
  assert.equal(tempOwner('x.json.tmp-12-ab@ci.tmp-3'), { pid: 12, host: 'ci.tmp-3' });
  assert.equal(tempOwner('x.json.tmp-12-ab@ci.tmp-3.tmp-12-cd'), { pid: 12, host: 'ci.tmp-3' });

  // removeStaleTemps reads such names back: this host's dead writer removed, another host's kept
  const dir = mkdtempSync(join(tmp, 'stale-long-'));
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  const ours = basename(tmpPathFor(join(dir, `${'b'.repeat(240)}.png`)));
  const ourHost = tempOwner(ours)!.host!;
  const cut = ours.slice(0, ours.indexOf('.tmp-'));
  const oursDead = `${cut.slice(0, 100)}.tmp-${dead}-0a1b2c3d@${ourHost}`;
  const otherDead = `${cut.slice(0, 100)}.tmp-${dead}-0a1b2c3d@${host}`;
  // what a save killed mid-write leaves: the addon's temp of the staged path, on this host and another
  const nestedDead = `best.ckpt.tmp-${dead}-58118e8a@${ourHost}.tmp-${dead}-deadbeef`;
  const nestedOther = `best.ckpt.tmp-${dead}-58118e8a@${host}.tmp-${dead}-deadbeef`;
  for (const f of [oursDead, otherDead, nestedDead, nestedOther]) writeFileSync(join(dir, f), 'x');
  assert.equal(removeStaleTemps(dir).sort(), [nestedDead, oursDead].sort());
  assert.equal(readdirSync(dir).sort(), [nestedOther, otherDead].sort());
});

test("a temp that cannot be made (or cleaned up) is reported as the user's file: DataError write-failed naming it first", async () => {
  const d = mkdtempSync(join(tmp, 'unwritable-'));
  // a folder so deep that no temp name fits under the 4095-byte path limit, though the file's own
  // path does: the open fails, and so did the cleanup's rm (ENAMETOOLONG), which hid the first error
  let deep = d;
  while (deep.length < 4084) deep = join(deep, 'd'.repeat(Math.min(200, 4083 - deep.length)));
  mkdirSync(deep, { recursive: true });
  const inDeep = join(deep, 'o.json');
  assert.ok(inDeep.length <= 4095, `${inDeep.length}`);
  // a regular file where a folder should be: the mkdir, the open and the rm all fail
  writeFileSync(join(d, 'plain'), 'a file');
  const underFile = join(d, 'plain', 'out.json');
  for (const [path, code] of [
    [inDeep, 'ENAMETOOLONG'],
    [underFile, /^(EEXIST|ENOTDIR)$/],
  ] as const) {
    const writers: [string, () => unknown][] = [
      ['writeFileAtomic', () => writeFileAtomic(path, '{}')],
      ['writeFileAtomicAsync', () => writeFileAtomicAsync(path, '{}')],
      ['withAtomicPath', () => withAtomicPath(path, async (t) => writeFileSync(t, '{}'))],
      ['writeFilesAtomic', () => writeFilesAtomic([{ path, data: '{}' }])],
    ];
    for (const [what, write] of writers) {
      try {
        await write();
        assert.unreachable(`${what}: the write went ahead`);
      } catch (e) {
        assert.instance(e, DataError, `${what}: ${String(e)}`);
        assert.is((e as DataError).reason, 'write-failed', what);
        assert.is((e as DataError).where.file, path, what);
        if (typeof code === 'string') assert.is((e as DataError & { code: string }).code, code, what);
        else assert.match((e as DataError & { code: string }).code, code, what);
        assert.ok(
          (e as Error).message.startsWith(`${path}: cannot write: `),
          `${what}: ${(e as Error).message}`,
        );
      }
    }
  }
  assert.equal(readdirSync(deep), []);
});

test('writeFilesAtomic: a pair is replaced together or not at all; a folder at either path is refused before any temp is made', () => {
  const d = mkdtempSync(join(tmp, 'pair-'));
  const png = join(d, 'e.png');
  const json = join(d, 'e.json');
  writeFilesAtomic([
    { path: png, data: 'map 1' },
    { path: json, data: 'numbers 1' },
  ]);
  assert.is(readFileSync(png, 'utf8'), 'map 1');
  assert.is(readFileSync(json, 'utf8'), 'numbers 1');
  // the second file cannot be written (its folder is a file): the first keeps its earlier content
  writeFileSync(join(d, 'plain'), 'a file');
  try {
    writeFilesAtomic([
      { path: png, data: 'map 2' },
      { path: join(d, 'plain', 'e.json'), data: 'numbers 2' },
    ]);
    assert.unreachable('the pair was written');
  } catch (e) {
    assert.instance(e, DataError);
    assert.is((e as DataError).where.file, join(d, 'plain', 'e.json'));
  }
  assert.is(readFileSync(png, 'utf8'), 'map 1');
  // a folder at the second path: refused before the first is staged
  mkdirSync(join(d, 'taken.json'));
  try {
    writeFilesAtomic([
      { path: png, data: 'map 3' },
      { path: join(d, 'taken.json'), data: 'numbers 3' },
    ]);
    assert.unreachable('the pair was written');
  } catch (e) {
    assert.instance(e, DataError);
    assert.is((e as DataError).reason, 'not-a-file');
  }
  assert.is(readFileSync(png, 'utf8'), 'map 1');
  assert.equal(readdirSync(d).sort(), ['e.json', 'e.png', 'plain', 'taken.json']);
});

test('writeFileAtomic writes a buffer over 2 GiB in calls of at most 1 GiB (one writeSync is refused over 2^31-1 bytes)', () => {
  // 2 GiB + 5 of zeros, never touched: the writes of the big temp file are counted, not made
  const big = new Uint8Array(2 ** 31 + 5);
  const real = fs.writeSync;
  const calls: { off: number; len: number }[] = [];
  fs.writeSync = ((fd: number, buf: Uint8Array, off: number, len: number, ...rest: unknown[]) => {
    if (buf !== big) return (real as (...a: unknown[]) => number)(fd, buf, off, len, ...rest);
    calls.push({ off, len });
    return len;
  }) as typeof real;
  syncBuiltinESMExports();
  try {
    writeFileAtomic(join(tmp, 'big.u8'), big);
  } finally {
    fs.writeSync = real;
    syncBuiltinESMExports();
  }
  assert.equal(
    calls.map((c) => c.len),
    [2 ** 30, 2 ** 30, 5],
  );
  assert.equal(
    calls.map((c) => c.off),
    [0, 2 ** 30, 2 ** 31],
  );
});

test('readBinaryFileSync: the bytes in an array of their own; a folder, a missing file and a FIFO are refused naming the file', () => {
  const f = join(tmp, 'bytes.bin');
  writeFileSync(f, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
  const b = readBinaryFileSync(f);
  assert.equal(Array.from(b), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.is(b.byteOffset, 0);
  assert.is(b.buffer.byteLength, 8); // a Float32Array may view it whole
  const expect = (path: string, reason: string, kind: RegExp) => {
    try {
      readBinaryFileSync(path);
    } catch (e) {
      assert.instance(e, DataError, String(e));
      assert.is((e as DataError).reason, reason);
      assert.is((e as DataError).where.file, path);
      assert.match((e as Error).message, kind);
      return;
    }
    assert.unreachable(`${path} was read`);
  };
  expect(join(tmp, 'no-such.bin'), 'read-failed', /cannot open: ENOENT/);
  expect(tmp, 'not-a-file', /a folder/);
  const fifo = join(tmp, 'bytes.fifo');
  spawnSync('mkfifo', [fifo]);
  expect(fifo, 'not-a-file', /FIFO/);
});

test.run();
