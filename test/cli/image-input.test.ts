/**
 * `cxrmask predict` / `explain` and `MaskingPredictor.predict(path)` on paths that are not images: a
 * symlink to /dev/zero and a FIFO are refused at once (exit 2, the file named) instead of filling
 * memory or blocking forever; `--max-pixels` / `--max-image-size` set the caps; region masks that do
 * not fit their width×height are refused before anything says `maskSource: "chexmask"`.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { MaskingPredictor } from '../../ts/service/predictor.js';
import { runCli } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-image-input-'));
const PHANTOM = join(import.meta.dirname, '..', 'data', 'fixtures', 'phantom-640x768.jpg');
const zero = join(tmp, 'zero.jpg');
const pipe = join(tmp, 'pipe.jpg');
symlinkSync('/dev/zero', zero);
execFileSync('mkfifo', [pipe]);

/** The CLI with a 60 s watchdog (a read of /dev/zero or a FIFO used to run or block until killed). */
function cli(args: string[]) {
  const r = runCli(args, { timeoutMs: 60_000 });
  assert.is(r.signal, null, `${args.join(' ')}: killed after 60 s (${r.err})`);
  return r;
}

/** Opens and closes the FIFO's other end: a read that blocked on it (the defect) then ends, and so can this process. */
function unblock(path: string): void {
  closeSync(openSync(path, constants.O_RDWR | constants.O_NONBLOCK));
}

test('predict: /dev/zero and a FIFO are refused with exit 2 naming the file; the caps are flags', () => {
  const model = ['--model', 'models/tiny', '--device', 'cpu'];
  for (const [path, kind] of [
    [zero, 'a character device'],
    [pipe, 'a FIFO'],
  ] as const) {
    const r = cli(['predict', path, ...model]);
    assert.is(r.code, 2, r.err);
    assert.is(r.err.trim(), `error: ${path}: not a regular file (${kind}); refusing to read it`);
  }
  const px = cli(['predict', PHANTOM, ...model, '--max-pixels', '491519']);
  assert.is(px.code, 2, px.err);
  assert.match(px.err, 'image is 640×768 (491520 pixels), over the limit of 491519 (maxPixels)');
  const bytes = cli(['predict', PHANTOM, ...model, '--max-image-size', '1kb']);
  assert.is(bytes.code, 2, bytes.err);
  assert.match(bytes.err, /image file is \d+ bytes, over the limit of 1024 \(maxFileBytes\)/);
  for (const bad of [
    ['--max-pixels', '0'],
    ['--max-pixels', 'many'],
    ['--max-image-size', 'huge'],
  ]) {
    const r = cli(['predict', PHANTOM, ...model, ...bad]);
    assert.is(r.code, 2, r.err);
    assert.match(r.err, `error: ${bad[0]}`);
  }
  const ok = cli(['predict', PHANTOM, ...model, '--max-pixels', '491520', '--json']);
  assert.is(ok.code, 0, ok.err);
  assert.is(JSON.parse(ok.out).kind, 'zeroshot');
});

test('explain: a FIFO as --image is refused at once', () => {
  const out = join(tmp, 'x.png');
  const r = cli(['explain', '--image', pipe, '--model', 'models/tiny', '--finding', 'Edema', '--out', out]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, `error: ${pipe}: not a regular file (a FIFO)`);
});

/** `p`, or a rejection after 10 s (a FIFO used to block the read forever). */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within 10 s`)), 10_000);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The error `p` rejects with; a failure naming `what` if it resolves. */
async function refused(p: Promise<unknown>, what: string): Promise<DataError> {
  try {
    await p;
  } catch (e) {
    return e as DataError;
  }
  throw new Error(`${what}: accepted`);
}

test('MaskingPredictor.predict(path): /dev/zero, a FIFO and mis-sized region masks are refused', async () => {
  const p = await MaskingPredictor.load({ modelDir: 'models/tiny', device: 'cpu' });
  try {
    const rss0 = process.memoryUsage().rss;
    for (const path of [zero, pipe]) {
      const e = await refused(within(p.predict(path), path), `${path} was scored`);
      assert.instance(e, DataError, e.message);
      assert.is(e.reason, 'image-not-file');
    }
    assert.ok(process.memoryUsage().rss - rss0 < 64 << 20, 'nothing was read');
    const w = 640;
    const h = 768;
    const good = new Uint8Array(w * h);
    for (let y = 200; y < 600; y++) good.fill(1, y * w + 100, y * w + 300);
    const r = await p.predict(readFileSync(PHANTOM), { width: w, height: h, masks: { rightLung: good } });
    assert.is(r.maskSource, 'chexmask');
    assert.ok(r.masked && r.delta);
    for (const [what, masks, field] of [
      ['quarter', { rightLung: new Uint8Array((w / 2) * (h / 2)) }, 'masks.rightLung'],
      ['empty', { heart: new Uint8Array(0) }, 'masks.heart'],
      ['none', {}, 'masks'],
    ] as const) {
      const e = await refused(p.predict(PHANTOM, { width: w, height: h, masks }), `${what} masks`);
      assert.is(e.reason, 'bad-masks', `${what}: ${e.message}`);
      assert.is(e.where.field, field);
      assert.ok(e.message.startsWith(`${PHANTOM}, field "${field}": `), e.message);
    }
  } finally {
    await p.dispose();
  }
});

test.after(() => {
  unblock(pipe);
  rmSync(tmp, { recursive: true, force: true });
});
test.run();
