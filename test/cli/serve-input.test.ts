/**
 * `cxrmask serve` (a child process, tiny model) against hostile bodies: a decompression bomb (a 1 MB
 * progressive JPEG declaring 16383×16383) is refused from its header with 400 `bad-image` and the
 * server's own RSS (from its /metrics) barely moves; SVG, TIFF, GIF and WebP never reach a decoder;
 * a second file part is 413 `too-many-parts`, not silently dropped.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { synthesize } from '../../ts/synth/synthesize.js';
import { serveCli } from './helpers.js';

const BOMB = gunzipSync(
  readFileSync(join(import.meta.dirname, '..', 'images', 'fixtures', 'progressive-16383x16383.jpg.gz')),
);
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-serve-input-'));
let child: ChildProcess;
let base = '';
let jpeg: Buffer;

test.before(async () => {
  const s = await synthesize({ out: join(tmp, 'data'), n: 2, seed: 4, width: 256, height: 288 });
  jpeg = readFileSync(join(s.mimicRoot, s.images[0]!.path));
  const args = [
    '--model',
    'models/tiny',
    '--device',
    'cpu',
    '--port',
    '0',
    '--max-queue',
    '8',
    '--log',
    'error',
  ];
  ({ child, url: base } = await serveCli(args));
});

type Answer = { status: number; body: Record<string, unknown> };
async function post(body: BodyInit, query = ''): Promise<Answer> {
  const r = await fetch(`${base}/predict${query}`, { method: 'POST', body });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}
const file = (bytes: Buffer) => new Blob([new Uint8Array(bytes)], { type: 'image/jpeg' });

async function rss(): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('cxrmask_process_resident_memory_bytes '));
  return Number(line!.split(' ').pop());
}

test('a decompression bomb is 400 bad-image from its header; the server’s RSS grows < 50 MB', async () => {
  // Warm up the paths a refusal takes (sharp's header read, the error answer).
  assert.is((await post(new Uint8Array(jpeg))).status, 200);
  assert.is((await post(new Uint8Array(BOMB.subarray(0, 64)))).status, 400);
  const rss0 = await rss();
  const answers = [
    ...(await Promise.all([0, 1, 2, 3].map(() => post(new Uint8Array(BOMB))))),
    await post(new Uint8Array(BOMB)),
    await post(new Uint8Array(BOMB)),
  ];
  const fd = new FormData();
  fd.append('image', file(BOMB), 'x.jpg');
  answers.push(await post(fd));
  const grew = (await rss()) - rss0;
  for (const a of answers) {
    assert.is(a.status, 400, JSON.stringify(a.body));
    assert.equal(a.body, {
      error: 'bad-image',
      message: 'the image has more pixels than this server accepts',
    });
  }
  // Decoding one took the server from 484 to 1,261 MiB; seven refusals hold none of that.
  assert.ok(grew < 50 << 20, `server RSS grew ${(grew / 2 ** 20).toFixed(1)} MB over 7 bombs`);
  assert.is((await post(new Uint8Array(jpeg))).status, 200, 'still serving');
});

test('SVG, TIFF, GIF and WebP bodies are 400 bad-image before any decoder; JPEG and PNG are served', async () => {
  const small = sharp(jpeg).resize(64, 72);
  const bodies: Record<string, Buffer> = {
    svg: Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="72"><rect width="9"/></svg>',
    ),
    tiff: await small.clone().tiff().toBuffer(),
    gif: await small.clone().gif().toBuffer(),
    webp: await small.clone().webp().toBuffer(),
  };
  for (const [fmt, body] of Object.entries(bodies)) {
    const raw = await post(new Uint8Array(body));
    assert.is(raw.status, 400, `${fmt}: ${JSON.stringify(raw.body)}`);
    assert.is(raw.body.error, 'bad-image', fmt);
    const fd = new FormData();
    fd.append('image', file(body), 'x.jpg');
    const mp = await post(fd);
    assert.is(mp.status, 400, `${fmt} multipart`);
    assert.is(mp.body.error, 'bad-image', `${fmt} multipart`);
  }
  assert.is((await post(new Uint8Array(await small.clone().png().toBuffer()))).status, 200, 'PNG');
  assert.is((await post(new Uint8Array(jpeg))).status, 200, 'JPEG');
});

test('multipart: a second file part is 413 too-many-parts; one file among fields is served', async () => {
  const two = new FormData();
  two.append('image', file(jpeg), 'a.jpg');
  two.append('other', file(jpeg), 'b.jpg');
  const r = await post(two);
  assert.is(r.status, 413, JSON.stringify(r.body));
  assert.is(r.body.error, 'too-many-parts');
  // The second file after a text field, and a tiny second file: the same.
  const late = new FormData();
  late.append('image', file(jpeg), 'a.jpg');
  late.append('note', 'text');
  late.append('x', new Blob(['1']), 'b.bin');
  assert.is((await post(late)).body.error, 'too-many-parts');
  const one = new FormData();
  one.append('note', 'before');
  one.append('image', file(jpeg), 'a.jpg');
  one.append('after', 'after');
  const ok = await post(one);
  assert.is(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body, (await post(new Uint8Array(jpeg))).body, 'the same answer as the raw body');
});

test.after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(tmp, { recursive: true, force: true });
});
test.run();
