/**
 * CSV paths from outside (the CheXmask CSV of `predict`, `explain`, `overlay`, `serve`, a MIMIC CSV)
 * must name regular files: a FIFO used to block the open forever (synchronously, in the gzip sniff,
 * so the whole event loop stopped), `/dev/zero` to be read until a cap, and a folder gave a raw
 * EISDIR naming no file. The calls run in a child process with a watchdog, so a regression fails
 * instead of hanging the suite.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from './helpers.js';

const SCRIPT = `
const { joinChexmask } = await import('./ts/data/chexmask.ts');
const { openCsv } = await import('./ts/data/csv.ts');
const { ChexmaskIndex } = await import('./ts/service/chexmask-index.ts');
const out = [];
for (const path of process.argv.slice(1)) {
  for (const [what, call] of [
    ['joinChexmask', () => joinChexmask(path, ['x'])],
    ['ChexmaskIndex.build', () => ChexmaskIndex.build(path)],
    ['openCsv', () => openCsv(path)],
  ]) {
    out.push(await call().then(() => ({ what, path, accepted: true }), (e) => ({ what, path, reason: e.reason, message: e.message })));
  }
}
console.log(JSON.stringify(out));
`;

test('joinChexmask, ChexmaskIndex.build and openCsv refuse a FIFO, /dev/zero and a folder at once', () => {
  const dir = tempDir('cxrmask-input-files-');
  const fifo = join(dir, 'fifo.csv');
  execFileSync('mkfifo', [fifo]);
  const zero = join(dir, 'zero.csv');
  symlinkSync('/dev/zero', zero);
  const folder = join(dir, 'folder.csv');
  mkdirSync(folder);
  const kinds: Record<string, string> = {
    [fifo]: 'a FIFO',
    [zero]: 'a character device',
    [folder]: 'a folder',
  };
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, fifo, zero, folder],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.is(r.signal, null, `killed after 60 s: a read blocked or did not end (${r.stderr})`);
  assert.is(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    what: string;
    path: string;
    reason?: string;
    message?: string;
  }[];
  assert.is(got.length, 9);
  for (const g of got) {
    assert.is(g.reason, 'not-a-file', `${g.what}(${kinds[g.path]}): ${g.message ?? 'accepted'}`);
    assert.is(g.message, `${g.path}: not a regular file (${kinds[g.path]}); refusing to read it`);
  }
});

test.run();
