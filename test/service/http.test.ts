/**
 * The HTTP service on the real stack (tiny model through the addon, sharp, a synthetic CheXmask CSV):
 * answers equal direct MaskingPredictor calls, bodies are bounded, errors carry status codes and no
 * server details, a full queue answers 503, and a signal lets the in-flight request finish.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChexmaskRow, joinChexmask } from '../../ts/data/chexmask.js';
import { ChexmaskIndex } from '../../ts/service/chexmask-index.js';
import { createServer } from '../../ts/service/http.js';
import { MaskingPredictor, type Prediction } from '../../ts/service/predictor.js';
import { closeOnSignals } from '../../ts/service/shutdown.js';
import type { SynthImage } from '../../ts/synth/plan.js';
import { synthesize } from '../../ts/synth/synthesize.js';

const MODEL = 'models/tiny';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-http-'));
let csv = '';
let ok: (SynthImage & { bytes: Buffer })[] = [];
let lowRca: SynthImage | undefined;
let rows = new Map<string, ChexmaskRow>();
let predictor: MaskingPredictor;
let index: ChexmaskIndex;
let app: ReturnType<typeof createServer>;
let base = '';

test.before(async () => {
  const out = join(tmp, 'data');
  const s = await synthesize({ out, n: 16, seed: 5, width: 256, height: 288, lowRcaRate: 0.3 });
  csv = s.chexmaskCsv;
  ok = s.images
    .filter((im) => im.chexmask === 'ok')
    .slice(0, 3)
    .map((im) => ({ ...im, bytes: readFileSync(join(s.mimicRoot, im.path)) }));
  lowRca = s.images.find((im) => im.chexmask === 'low-rca');
  ({ rows } = await joinChexmask(csv, [...s.images.map((im) => im.dicomId)], { minDice: 0 }));
  predictor = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu' });
  index = await ChexmaskIndex.build(csv);
  app = createServer({ predictor, chexmask: index, bodyLimit: 1 << 20, maxQueue: 4 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

const post = async (body: Buffer | string, query = '', headers: Record<string, string> = {}) => {
  const data = typeof body === 'string' ? body : new Uint8Array(body);
  const r = await fetch(`${base}/predict${query}`, { method: 'POST', body: data, headers });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
};

/** Error bodies name neither files nor code. */
function assertClean(body: Record<string, unknown>) {
  const text = JSON.stringify(body);
  assert.not.ok(text.includes(tmp) || /node_modules|\.ts:|\.js:|\n\s+at /.test(text), text);
  assert.type(body.error, 'string');
}

test('index: every row read by byte offset equals the join; BOM, CRLF and no final newline too', async () => {
  assert.is(index.size, rows.size);
  for (const [id, want] of rows) {
    if (want.diceMean >= 0.7) assert.equal((await index.row(id)).landmarks, want.landmarks);
  }
  const text = readFileSync(csv, 'utf8').trimEnd().replace(/\n/g, '\r\n');
  const odd = join(tmp, 'odd.csv');
  writeFileSync(odd, `\ufeff${text}`);
  const idx = await ChexmaskIndex.build(odd, { minDice: 0 });
  for (const [id, want] of rows) {
    const got = await idx.row(id);
    assert.equal(
      [got.dicomId, got.height, got.width, got.diceMean],
      [id, want.height, want.width, want.diceMean],
    );
    assert.equal(got.landmarks, want.landmarks);
  }
  await idx.row('nope').then(
    () => assert.unreachable(),
    (e: { reason: string }) => assert.is(e.reason, 'unknown-id'),
  );
  await idx.close();
});

test('concurrent requests answer what the predictor answers directly', async () => {
  const direct: Prediction[] = [];
  for (const im of ok) direct.push(await predictor.predict(im.bytes, rows.get(im.dicomId)));
  const bare = await predictor.predict(ok[0]!.bytes);
  const got = await Promise.all([
    ...ok.map((im) => post(im.bytes, `?dicomId=${im.dicomId}`)),
    post(ok[0]!.bytes),
  ]);
  // requests batched together against lone calls: the same answer up to float rounding
  // (docs/service.md: < 1e-5; PyTorch does not promise bitwise batch invariance)
  const same = (body: Record<string, unknown>, want: Record<string, unknown>, what: string) => {
    const scores = ['original', 'masked', 'delta'];
    assert.equal(
      Object.fromEntries(Object.entries(body).filter(([k]) => !scores.includes(k))),
      Object.fromEntries(Object.entries(want).filter(([k]) => !scores.includes(k))),
      what,
    );
    for (const k of scores) {
      const [a, b] = [body[k] as Record<string, number> | null, want[k] as Record<string, number> | null];
      assert.is(a === null, b === null, `${what} ${k}`);
      for (const f of Object.keys(b ?? {})) assert.ok(Math.abs(a![f]! - b![f]!) < 1e-5, `${what} ${k} ${f}`);
    }
  };
  ok.forEach((im, i) => {
    assert.is(got[i]!.status, 200);
    same(got[i]!.body, { dicomId: im.dicomId, ...direct[i]! }, im.dicomId);
  });
  same(got[3]!.body, { dicomId: null, ...bare }, 'without a dicomId');
});

test('bad requests: 400 for undecodable or empty bodies and bad queries, 404 unknown id, 422 unusable row', async () => {
  const cases: [Promise<{ status: number; body: Record<string, unknown> }>, number, string][] = [
    [post(Buffer.from('not an image at all')), 400, 'bad-image'],
    [post('{"image": "x"}'), 400, 'bad-image'],
    [post(ok[0]!.bytes.subarray(0, 200)), 400, 'bad-image'],
    [post(''), 400, 'empty-body'],
    [post(ok[0]!.bytes, '?dicomId='), 400, 'bad-request'],
    [post(ok[0]!.bytes, '?dicom=1'), 400, 'bad-request'],
    [post(ok[0]!.bytes, '?overlayy=1&masks=1'), 400, 'bad-request'],
    [post(ok[0]!.bytes, '?dicomId=does-not-exist'), 404, 'unknown-id'],
  ];
  // Another image's row: its grid is not this image's size.
  const other = ok.find((im) => im.width !== ok[0]!.width || im.height !== ok[0]!.height);
  assert.ok(other && lowRca, 'the synthetic set has images of other sizes and a low-Dice row');
  cases.push([post(ok[0]!.bytes, `?dicomId=${other.dicomId}`), 422, 'size-mismatch']);
  cases.push([post(ok[0]!.bytes, `?dicomId=${lowRca.dicomId}`), 422, 'low-quality-row']);
  for (const [p, status, error] of cases) {
    const r = await p;
    assert.is(r.status, status, JSON.stringify(r.body));
    assert.is(r.body.error, error);
    assertClean(r.body);
  }
  const png = await sharp({ create: { width: 64, height: 80, channels: 3, background: '#888' } })
    .png()
    .toBuffer();
  const r = await post(png);
  assert.is(r.status, 200, 'a PNG without a row is scored');
});

test('400 for an unknown query parameter names it', async () => {
  for (const name of ['dicom', 'dicomID', 'overlayy']) {
    const r = await post(ok[0]!.bytes, `?${name}=1`);
    assert.is(r.status, 400);
    assert.equal(r.body, { error: 'bad-request', message: `unknown query parameter "${name}"` });
  }
  const bad = await post(ok[0]!.bytes, '?overlay=yes');
  assert.match(bad.body.message as string, /overlay/, 'a bad value names its parameter too');
});

test('any content type is the image bytes, even one fastify cannot parse (no 415)', async () => {
  const want = await post(ok[0]!.bytes);
  assert.is(want.status, 200);
  for (const type of ['jpeg', 'image/jpeg, image/png', 'image/', ';', 'text/plain; charset=utf-8']) {
    const r = await post(ok[0]!.bytes, '', { 'content-type': type });
    assert.is(r.status, 200, `${type}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body, want.body, type);
  }
  const empty = await post('', '', { 'content-type': 'jpeg' });
  assert.equal([empty.status, empty.body.error], [400, 'empty-body']);
});

/** Sends `total` bytes (one reused chunk; chunked, or with a declared length) until the server answers. */
function sendBody(total: number, declare: boolean): Promise<{ status: number; sent: number; body: string }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(1 << 20, 7);
    let sent = 0;
    let answered = false;
    const headers: Record<string, string> = { 'content-type': 'image/jpeg' };
    if (declare) headers['content-length'] = String(total);
    const req = request(`${base}/predict`, { method: 'POST', headers });
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode!, sent, body }));
      res.on('error', reject);
    });
    // The server closes the connection after a 413; a write racing that close may fail.
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    const pump = () => {
      while (!answered && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!declare) req.end();
    };
    pump();
  });
}

test('413 for a body over the limit, declared or streamed, without buffering it', async () => {
  for (const declare of [true, false]) {
    const rss0 = process.memoryUsage().rss;
    const r = await sendBody(400 << 20, declare);
    const grew = process.memoryUsage().rss - rss0;
    assert.is(r.status, 413);
    assert.is(JSON.parse(r.body).error, 'too-large');
    assert.ok(r.sent < 100 << 20, `the client stopped once answered (sent ${r.sent >> 20} MB)`);
    assert.ok(grew < 64 << 20, `RSS grew by ${(grew / 2 ** 20).toFixed(0)} MB for a 400 MB body`);
  }
});

test('503 when the model queue is full, before the body is read', async () => {
  const busy = [...ok, ok[0]!].map((im) => predictor.predict(im.bytes, rows.get(im.dicomId)));
  const r = await post(ok[0]!.bytes, `?dicomId=${ok[0]!.dicomId}`);
  assert.is(r.status, 503);
  assert.is(r.body.error, 'queue-full');
  await Promise.all(busy);
  assert.is((await post(ok[0]!.bytes)).status, 200, 'served again once the queue drains');
});

const port = () => Number(new URL(base).port);

/** A raw TCP connection to the server. */
function openConnection(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port(), '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Whether the server still accepts new connections (false once its listener is closed). */
function accepts(): Promise<boolean> {
  return openConnection().then(
    (s) => {
      s.destroy();
      return true;
    },
    () => false,
  );
}

/** The HTTP answer read from `s` until the server closes it. */
function answerOf(s: Socket) {
  return new Promise<{ status: number; headers: Record<string, string>; body: string; text: string }>(
    (resolve, reject) => {
      let text = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => {
        text += d;
      });
      s.once('error', reject);
      s.once('close', () => {
        const [head = '', body = ''] = text.split('\r\n\r\n');
        const [statusLine = '', ...lines] = head.split('\r\n');
        const headers: Record<string, string> = {};
        for (const l of lines) {
          const i = l.indexOf(':');
          headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        resolve({ status: Number(statusLine.split(' ')[1]), headers, body, text });
      });
    },
  );
}

test('SIGTERM: in-flight requests finish with 200, a request arriving meanwhile gets 503 shutting-down, then the model is freed and exit(0)', async () => {
  let exited: number | null = null;
  let remove = () => {};
  const exitedP = new Promise<void>((resolve) => {
    remove = closeOnSignals(app, {
      exit: (code) => {
        exited = code;
        resolve();
      },
    });
  });
  // One request on the model, one waiting in its queue.
  const inFlight = ok.slice(1).map((im) => post(im.bytes, `?dicomId=${im.dicomId}`));
  while (predictor.pending < 2) await new Promise((r) => setTimeout(r, 2));
  // A connection whose request has begun is not idle, so closing keeps it: the rest of its request
  // arrives while the server closes.
  const late = await openConnection();
  late.write('POST /predict HTTP/1.1\r\nHost: x\r\n');
  await new Promise((r) => setTimeout(r, 50));
  process.emit('SIGTERM', 'SIGTERM');
  while (await accepts()) await new Promise((r) => setTimeout(r, 5));
  const lateAnswer = answerOf(late);
  late.write(`content-length: ${ok[0]!.bytes.length}\r\n\r\n`);
  late.write(ok[0]!.bytes);
  const a = await lateAnswer;
  assert.is(a.status, 503, a.text);
  assert.is(a.headers['retry-after'], '1');
  assert.is(a.headers.connection, 'close');
  assert.equal(JSON.parse(a.body), { error: 'shutting-down', message: 'the server is shutting down' });
  for (const r of await Promise.all(inFlight)) assert.is(r.status, 200);
  await exitedP;
  remove(); // uvu runs every file in one process: leave Ctrl-C to its default
  assert.is(exited, 0);
  await fetch(`${base}/healthz`).then(
    () => assert.unreachable('no longer listening'),
    () => undefined,
  );
  await predictor.predict(ok[0]!.bytes).then(
    () => assert.unreachable('the predictor was disposed'),
    (e: Error) => assert.match(e.message, /disposed/),
  );
});

test.after(async () => {
  await app?.close();
  rmSync(tmp, { recursive: true, force: true });
});
test.run();
