/**
 * `cxrmask serve` as a user runs it: a child process on 127.0.0.1 (tiny model, tiny segmenter, a
 * synthetic CheXmask CSV), driven over real HTTP with concurrent, multipart, oversized and malformed requests. Answers
 * equal in-process MaskingPredictor calls; status codes are the documented ones; the server's own RSS
 * (read from its /metrics) stays bounded; SIGTERM lets in-flight requests finish and exits 0.
 */

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSize } from '../../ts/cli/options.js';

import { FINDINGS } from '../../ts/common/labels.js';
import { type ChexmaskRow, joinChexmask } from '../../ts/data/chexmask.js';
import { preprocess } from '../../ts/images/preprocess.js';
import { overlayRgb } from '../../ts/masks/overlay.js';
import { preprocessFor } from '../../ts/model/backend-real.js';
import { readModelMeta } from '../../ts/model/meta.js';
import { Segmenter } from '../../ts/model/segmenter.js';
import { MaskingPredictor, type Prediction } from '../../ts/service/predictor.js';
import { regionBitsOnGrid } from '../../ts/service/region-bits.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { assertSameArray } from '../service/same-array.js';
import { runCli, serveCli } from './helpers.js';

const MODEL = 'models/tiny';
const SIZE = readModelMeta(MODEL).imageSize;
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-serve-'));
let child: ChildProcess;
let base = '';
let stderr = () => '';
let images: { dicomId: string; bytes: Buffer; row: ChexmaskRow }[] = [];
const expected = new Map<string, Prediction>();

test.before(async () => {
  const s = await synthesize({ out: join(tmp, 'data'), n: 12, seed: 9, width: 256, height: 288 });
  const ok = s.images.filter((im) => im.chexmask === 'ok').slice(0, 4);
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    ok.map((im) => im.dicomId),
    { minDice: 0 },
  );
  images = ok.map((im) => ({
    dicomId: im.dicomId,
    bytes: readFileSync(join(s.mimicRoot, im.path)),
    row: rows.get(im.dicomId)!,
  }));
  const p = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu' });
  for (const im of images) expected.set(im.dicomId, await p.predict(im.bytes, im.row));
  await p.dispose();

  const args = ['--model', MODEL, '--device', 'cpu', '--chexmask', s.chexmaskCsv, '--min-dice', '0'];
  args.push('--segmenter', 'models/seg-tiny', '--allow-untrained', '--port', '0');
  args.push('--max-queue', '4', '--body-limit', '1mb');
  args.push('--log', 'error');
  ({ child, url: base, stderr } = await serveCli(args));
});

type Answer = { status: number; headers: Headers; body: Record<string, unknown> };
async function post(body: BodyInit, query = '', headers: Record<string, string> = {}): Promise<Answer> {
  const r = await fetch(`${base}/predict${query}`, { method: 'POST', body, headers });
  return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
}
const form = (bytes: Buffer, field = 'image') => {
  const fd = new FormData();
  fd.append('note', 'a small text field is allowed');
  fd.append(field, new Blob([new Uint8Array(bytes)], { type: 'image/jpeg' }), 'x.jpg');
  return fd;
};

/** A value of the server's own metrics, e.g. `cxrmask_process_resident_memory_bytes`. */
async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

function assertScores(got: Record<string, unknown>, want: Prediction) {
  for (const k of ['original', 'masked', 'delta'] as const) {
    const g = got[k] as Record<string, number>;
    for (const f of FINDINGS) assert.ok(Math.abs(g[f]! - want[k]![f]) < 1e-5, `${k} ${f}`);
  }
}

/** Error bodies name neither files nor code. */
function assertClean(body: Record<string, unknown>) {
  const text = JSON.stringify(body);
  assert.not.ok(text.includes(tmp) || /node_modules|\.ts:|\.js:|\n\s+at |\/work\//.test(text), text);
  assert.type(body.error, 'string');
}

test('--body-limit sizes', () => {
  assert.is(parseSize('1mb'), 1 << 20);
  assert.is(parseSize('512K'), 512 << 10);
  assert.is(parseSize('1000'), 1000);
  assert.throws(() => parseSize('lots'), /--body-limit lots/);
});

test('healthz; raw JPEG and multipart give the in-process answers; overlay and masks are PNGs', async () => {
  const h = (await (await fetch(`${base}/healthz`)).json()) as Record<string, unknown>;
  assert.equal(h, {
    status: 'ok',
    kind: 'zeroshot',
    segmenter: true,
    pending: 0,
    maxQueue: 4,
    chexmaskRows: h.chexmaskRows,
  });
  assert.ok((h.chexmaskRows as number) >= images.length);
  const im = images[0]!;
  const raw = await post(new Uint8Array(im.bytes), `?dicomId=${im.dicomId}&overlay=1&masks=true`);
  assert.is(raw.status, 200, JSON.stringify(raw.body));
  assert.is(raw.body.maskSource, 'chexmask');
  assertScores(raw.body, expected.get(im.dicomId)!);
  const png = await sharp(Buffer.from(raw.body.overlayPng as string, 'base64'))
    .raw()
    .toBuffer({ resolveWithObject: true });
  assert.equal([png.info.width, png.info.height, png.info.channels], [SIZE, SIZE, 3]);
  const maskPng = Buffer.from(raw.body.masks as string, 'base64');
  assert.is((await sharp(maskPng).metadata()).channels, 1, 'one gray channel');
  const masks = await sharp(maskPng).extractChannel(0).raw().toBuffer();
  const pp = await preprocess(im.bytes, im.row, { preprocess: preprocessFor(readModelMeta(MODEL)) });
  assertSameArray(masks, regionBitsOnGrid(im.row, pp.geometry), 'region bits as gray PNG');
  assertSameArray(png.data, overlayRgb(pp.gray, pp.contour), 'overlay PNG');

  const mp = await post(form(im.bytes), `?dicomId=${im.dicomId}`);
  assert.is(mp.status, 200, JSON.stringify(mp.body));
  const { overlayPng: _o, masks: _m, ...plain } = raw.body;
  assert.equal(mp.body, plain);
  // No dicomId: the segmenter's masks (the same bits as the Segmenter called directly).
  const bare = await post(form(im.bytes, 'file'), '?masks=1');
  assert.is(bare.status, 200, JSON.stringify(bare.body));
  assert.is(bare.body.maskSource, 'segmenter');
  const seg = await Segmenter.load('models/seg-tiny', { device: 'cpu' });
  const predicted = await seg.predictMasks(pp.original, 1);
  await seg.dispose();
  const got = await sharp(Buffer.from(bare.body.masks as string, 'base64'))
    .extractChannel(0)
    .raw()
    .toBuffer();
  assertSameArray(got, predicted, 'predicted region bits over HTTP');
  assert.equal(bare.body.original, raw.body.original);
  assert.not.equal(bare.body.masked, raw.body.masked, 'predicted masks are not CheXmask’s');
});

test('concurrent requests: each answered 200 with its own image’s scores, or 503 + Retry-After', async () => {
  const before = {
    calls: await metric('cxrmask_model_batch_calls_total'),
    batches: await metric('cxrmask_model_batches_total'),
  };
  const sends = Array.from({ length: 16 }, (_, i) => {
    const im = images[i % images.length]!;
    const body = i % 2 ? form(im.bytes) : new Uint8Array(im.bytes);
    return post(body, `?dicomId=${im.dicomId}`).then((a) => ({ a, im }));
  });
  const got = await Promise.all(sends);
  let served = 0;
  for (const { a, im } of got) {
    if (a.status === 503) {
      assert.is(a.body.error, 'queue-full');
      assert.is(a.headers.get('retry-after'), '1');
      continue;
    }
    assert.is(a.status, 200, JSON.stringify(a.body));
    assertScores(a.body, expected.get(im.dicomId)!);
    served++;
  }
  assert.ok(served >= 4, `at least the queue's worth served (${served})`);
  assert.is(await metric('cxrmask_queue_depth'), 0, 'nothing left queued');
  // every request served went through a model batch; batches are shared, never more than requests
  const calls = (await metric('cxrmask_model_batch_calls_total')) - before.calls;
  const batches = (await metric('cxrmask_model_batches_total')) - before.batches;
  assert.is(calls, served);
  assert.ok(batches >= 1 && batches <= calls, `${batches} batches for ${calls} requests`);
  const text = await (await fetch(`${base}/metrics`)).text();
  assert.match(text, /^cxrmask_model_batch_reruns_total 0$/m, 'no batch failed, and the counter says so');
});

test('malformed requests: 400/404 with fixed texts and no server details', async () => {
  const im = images[0]!;
  const noFile = new FormData();
  noFile.append('dicomId', im.dicomId);
  const cases: [Promise<Answer>, number, string][] = [
    [post(new TextEncoder().encode('not an image')), 400, 'bad-image'],
    [post(new Uint8Array(im.bytes.subarray(0, 300))), 400, 'bad-image'],
    [post(new Uint8Array(0)), 400, 'empty-body'],
    [post(noFile), 400, 'no-file'],
    [
      post('--zzz\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\nabc', '', {
        'content-type': 'multipart/form-data; boundary=zzz',
      }),
      400,
      'bad-multipart',
    ],
    [post('xyz', '', { 'content-type': 'multipart/form-data' }), 400, 'bad-multipart'],
    [post(new Uint8Array(im.bytes), '?overlay=yes'), 400, 'bad-request'],
    [post(new Uint8Array(im.bytes), '?dicomId=nope'), 404, 'unknown-id'],
  ];
  for (const [p, status, error] of cases) {
    const r = await p;
    assert.is(r.status, status, JSON.stringify(r.body));
    assert.is(r.body.error, error, JSON.stringify(r.body));
    assertClean(r.body);
  }
  const r = await fetch(`${base}/nowhere`);
  assert.is(r.status, 404);
  assertClean((await r.json()) as Record<string, unknown>);
});

/**
 * A multipart upload of one file part: `send` bytes of it are written (chunked, or under a declared
 * `length`), then the client stalls with the request open. Resolves with the answer and how long after
 * the stall began it came, or status 0 if none came within `waitMs`. The last byte is written alone,
 * once all before it are with the kernel, so the client writes nothing after the byte that passes the
 * limit: a write after the server's answer and close failed (EPIPE), and the socket was destroyed
 * before the answer waiting in it was read (about 1 run in 40).
 */
function stalledMultipart(
  send: number,
  length?: number,
  waitMs = 5000,
): Promise<{ status: number; afterStallMs: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'content-type': 'multipart/form-data; boundary=XX' };
    if (length !== undefined) headers['content-length'] = String(length);
    const req = request(`${base}/predict`, { method: 'POST', headers });
    let stalledAt = Number.POSITIVE_INFINITY;
    const done = (r: Awaited<ReturnType<typeof stalledMultipart>>) => {
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ status: 0, afterStallMs: waitMs, headers: {}, body: '' }), waitMs);
    req.on('response', (res) => {
      const at = Date.now() - stalledAt;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => done({ status: res.statusCode!, afterStallMs: at, headers: res.headers, body }));
    });
    req.on('error', () => {}); // the server closes after its 413; the answer came first
    req.write(
      '--XX\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n',
    );
    const chunk = Buffer.alloc(64 << 10, 7);
    let sent = 0;
    const last = () => {
      if (send > 0) req.write(Buffer.of(7));
      stalledAt = Date.now();
    };
    const pump = () => {
      while (sent < send - 1) {
        const part = chunk.subarray(0, Math.min(chunk.length, send - 1 - sent));
        sent += part.length;
        if (sent === send - 1) return void req.write(part, last);
        if (!req.write(part)) return void req.once('drain', pump);
      }
      last();
    };
    pump();
  });
}

test('multipart over --body-limit: 413 as soon as the limit is passed, while the client still sends', async () => {
  const limit = 1 << 20; // the server's --body-limit 1mb
  // No length declared: one byte past the limit, then the client stalls. Before, busboy truncated the
  // file and read on to the end of the form, so nothing came back until the request timed out.
  const streamed = await stalledMultipart(limit + 1);
  assert.is(streamed.status, 413, 'answered while the request is still open');
  assert.ok(streamed.afterStallMs < 3000, `answered ${streamed.afterStallMs} ms after the stall`);
  assert.is(streamed.headers.connection, 'close');
  assert.equal(JSON.parse(streamed.body), {
    error: 'too-large',
    message: `image body larger than ${limit} bytes`,
  });
  // A declared length that cannot hold a file within the limit (beyond the form's small framing): 413
  // before the file's first byte.
  const declared = await stalledMultipart(0, limit + (100 << 20));
  assert.is(declared.status, 413);
  assert.ok(declared.afterStallMs < 3000, `answered ${declared.afterStallMs} ms after the headers`);
  assert.is(declared.headers.connection, 'close');
  assert.is(JSON.parse(declared.body).error, 'too-large');
  // Still served afterwards; a file of exactly the limit (a JPEG padded after its end) is served,
  // although its form, with the framing, is declared a little over the limit.
  const im = images[2]!;
  const padded = Buffer.concat([im.bytes, Buffer.alloc(limit - im.bytes.length)]);
  const atLimit = await post(form(padded), `?dicomId=${im.dicomId}`);
  assert.is(atLimit.status, 200, JSON.stringify(atLimit.body));
  assertScores(atLimit.body, expected.get(im.dicomId)!);
});

test('serve --min-dice outside [0, 1] or not a number: exit 2 naming the flag, before listening', () => {
  for (const v of ['abc', '2', '-1']) {
    // the watchdog: a server that starts anyway would never exit
    const r = runCli(['serve', '--model', MODEL, '--device', 'cpu', '--port', '0', '--min-dice', v], {
      timeoutMs: 60_000,
    });
    assert.is(r.code, 2, `--min-dice ${v}: ${r.err}`);
    assert.match(r.err, /^error: --min-dice (NaN|2|-1): expected a Dice RCA \(Mean\) from 0 to 1$/m);
    assert.not.match(r.out, /listening/);
  }
});

test('serve --log info: the JSON request log goes to stderr; stdout holds only the listening line', async () => {
  const s = await serveCli(['--model', MODEL, '--device', 'cpu', '--port', '0', '--log', 'info']);
  try {
    assert.is((await fetch(`${s.url}/healthz`)).status, 200);
    const deadline = Date.now() + 5000;
    while (!s.stderr().includes('request completed') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(s.stdout(), /^cxrmask serve: listening on http:\/\/\S+ \([^)]*\)\n$/);
    const lines = s.stderr().trim().split('\n');
    const log = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string });
    assert.ok(
      log.some((l) => l.msg === 'request completed'),
      `pino's lines on stderr:\n${s.stderr()}`,
    );
  } finally {
    s.child.kill('SIGKILL');
  }
});

/**
 * Streams `total` bytes in 1 MiB chunks (chunked encoding) until the server answers. The server
 * closes the connection after its 413, so a write may fail before the answer is parsed: that counts
 * as status 0 ("cut off"), with the bytes sent so far.
 */
function stream(total: number): Promise<{ status: number; sent: number }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(1 << 20, 7);
    let sent = 0;
    let answered = false;
    const req = request(`${base}/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' } });
    req.on('response', (res) => {
      answered = true;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, sent }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (answered) return;
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') resolve({ status: 0, sent });
      else reject(e);
    });
    const pump = () => {
      while (!answered && !req.destroyed && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

test('oversized bodies in parallel: 413 each, the server’s RSS stays bounded, and it still serves', async () => {
  const rss0 = await metric('cxrmask_process_resident_memory_bytes');
  assert.ok(rss0 > 0, 'the server reports its RSS');
  const tooLarge = () => metric('cxrmask_http_requests_total', 'route="/predict",method="POST",status="413"');
  const answered0 = await tooLarge();
  const big = await Promise.all([0, 1, 2, 3].map(() => stream(200 << 20)));
  for (const b of big) {
    assert.ok(b.status === 413 || b.status === 0, `413 or cut off, got ${b.status}`);
    assert.ok(b.sent < 100 << 20, `the client stopped once answered (sent ${b.sent >> 20} MB)`);
  }
  // The server answers each one 413; whether the client reads the answer before the server's close
  // cuts its upload is a race on a loaded machine, so the server's own count is what is checked.
  assert.is((await tooLarge()) - answered0, 4, 'each oversized body answered 413 by the server');
  const grew = (await metric('cxrmask_process_resident_memory_bytes')) - rss0;
  assert.ok(grew < 96 << 20, `server RSS grew ${(grew / 2 ** 20).toFixed(0)} MB for 4×200 MB bodies`);
  const im = images[1]!;
  const after = await post(new Uint8Array(im.bytes), `?dicomId=${im.dicomId}`);
  assert.is(after.status, 200);
  assert.ok(
    (await metric('cxrmask_http_requests_total', 'route="/predict",method="POST",status="413"')) >= 5,
  );
  assert.ok(
    (await metric('cxrmask_http_requests_total', 'route="/predict",method="POST",status="200"')) >= 5,
  );
  assert.ok((await metric('cxrmask_prediction_seconds_count', 'mask_source="chexmask"')) >= 5);
});

test('SIGTERM: in-flight requests finish with 200, then the process exits 0', async () => {
  const inFlight = images.map((im) => post(new Uint8Array(im.bytes), `?dicomId=${im.dicomId}`));
  // Wait until the server holds at least two of them (a request not yet arrived would get 503).
  let admitted = 0;
  const deadline = Date.now() + 10_000;
  while (admitted < 2 && Date.now() < deadline) {
    admitted = ((await (await fetch(`${base}/healthz`)).json()) as { pending: number }).pending;
    if (admitted < 2) await new Promise((r) => setTimeout(r, 2));
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const answers = await Promise.allSettled(inFlight);
  const served = answers.filter((a) => a.status === 'fulfilled' && a.value.status === 200).length;
  // Every request the server held when the signal came is answered 200; a later one can only be
  // refused (503 shutting-down, or no connection once the listener is closed).
  assert.ok(served >= Math.max(admitted, 1), `${served} answered 200, ${admitted} were held`);
  for (const a of answers) {
    if (a.status === 'fulfilled' && a.value.status !== 200) assert.is(a.value.body.error, 'shutting-down');
  }
  assert.is(await exited, 0, stderr());
  await fetch(`${base}/healthz`).then(
    () => assert.unreachable('no longer listening'),
    () => undefined,
  );
});

test.after(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});
test.run();
