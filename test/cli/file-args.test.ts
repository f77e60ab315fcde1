/**
 * Paths and sizes from the command line that reach a loader: a FIFO or device given as a checkpoint or
 * as model.json is refused at once (it used to block the load or never end), and `serve --body-limit`
 * has a ceiling. Each CLI case runs in a subprocess with a timeout, so a regression fails, not hangs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-file-args-'));
const MODEL = process.env.CXRMASK_TEST_MODEL ?? join(process.cwd(), 'models', 'tiny');
const IMAGE = join(process.cwd(), 'test', 'data', 'fixtures', 'phantom-640x768.jpg');

const cli = (args: string[]) => runCli(args, { timeoutMs: 90_000 });

test('predict --checkpoint <FIFO> is refused at once, naming the file (exit 2)', () => {
  const fifo = join(tmp, 'best.ckpt');
  execFileSync('mkfifo', [fifo]);
  const r = cli(['predict', IMAGE, '--model', MODEL, '--checkpoint', fifo, '--device', 'cpu']);
  assert.not.ok(r.timedOut, 'predict blocked on the FIFO');
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /best\.ckpt.*not a regular file \(a FIFO\)/);
});

test('a model.json that is a device (symlink to /dev/zero) is refused, naming it', () => {
  const dir = join(tmp, 'model');
  mkdirSync(dir);
  for (const f of readdirSync(MODEL)) if (f !== 'model.json') symlinkSync(join(MODEL, f), join(dir, f));
  symlinkSync('/dev/zero', join(dir, 'model.json'));
  const r = cli(['predict', IMAGE, '--model', dir, '--device', 'cpu']);
  assert.not.ok(r.timedOut, 'predict kept reading /dev/zero');
  assert.ok(r.code !== 0, r.err);
  assert.match(r.err, /model\.json.*not a regular file \(a character device\)/);
});

test('serve --max-batch outside 1–256 is refused before any model loads (exit 2)', () => {
  for (const bad of ['0', '257', '2.5']) {
    const r = cli(['serve', '--max-batch', bad, '--model', join(tmp, 'no-model')]);
    assert.is(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`--max-batch ${bad}: expected an integer from 1 to 256`));
  }
});

test('serve --body-limit above 1 GiB is refused (exit 2)', () => {
  const r = cli(['serve', '--body-limit', '2gb', '--model', join(tmp, 'no-model')]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /--body-limit 2gb: at most 1024mb/);
});

test.run();
