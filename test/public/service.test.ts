/**
 * The service family of the package root: openSegmenter, MaskingPredictor, ChexmaskIndex, createServer
 * and closeOnSignals, with the tiny exports and synthetic JPEGs. Imports only the root (fixtures aside).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ChexmaskIndex,
  type ChexmaskRow,
  ConfigError,
  closeOnSignals,
  createServer,
  FINDINGS,
  HttpError,
  joinChexmask,
  MaskingPredictor,
  openSegmenter,
  type Segmenter,
} from '../../ts/index.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { SEG_EXPORT, trainedSegmenterFolder } from '../install/helpers.js';
import { MODEL_DIR } from '../native/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-public-service-'));
let csv = '';
let jpeg = Buffer.alloc(0);
let dicomId = '';
let row: ChexmaskRow;
let segmenter: Segmenter;
let predictor: MaskingPredictor;

test.before(async () => {
  const s = await synthesize({ out: join(tmp, 'data'), n: 8, seed: 9, width: 256, height: 288 });
  csv = s.chexmaskCsv;
  const im = s.images.find((i) => i.chexmask === 'ok')!;
  dicomId = im.dicomId;
  jpeg = readFileSync(join(s.mimicRoot, im.path));
  row = (await joinChexmask(csv, [dicomId])).rows.get(dicomId)!;
  segmenter = await openSegmenter(await trainedSegmenterFolder(join(tmp, 'segmenter')), { device: 'cpu' });
  predictor = await MaskingPredictor.load({ modelDir: MODEL_DIR, segmenter, device: 'cpu' });
});
test.after(async () => {
  await predictor.dispose().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
});

test('openSegmenter refuses an export that was never trained, unless told', async () => {
  const err = await openSegmenter(SEG_EXPORT, { device: 'cpu' }).catch((e: unknown) => e);
  assert.instance(err, ConfigError);
  assert.match((err as Error).message, /never trained/);
  const seg = await openSegmenter(SEG_EXPORT, { device: 'cpu', untrained: true });
  assert.not.ok(seg.trained);
  await seg.dispose();
});

test('MaskingPredictor: probabilities per finding, masked − original, masks from the row or the segmenter', async () => {
  assert.is(predictor.kind, 'zeroshot');
  const fromRow = await predictor.predict(jpeg, row);
  const fromSeg = await predictor.predict(jpeg, null, { overlay: true, masks: true });
  assert.is(fromRow.maskSource, 'chexmask');
  assert.is(fromSeg.maskSource, 'segmenter');
  for (const p of [fromRow, fromSeg]) {
    assert.equal(Object.keys(p.original), [...FINDINGS]);
    for (const f of FINDINGS) {
      assert.ok(p.original[f] > 0 && p.original[f] < 1, f);
      assert.ok(Math.abs(p.delta![f] - (p.masked![f] - p.original[f])) < 1e-12, f);
    }
  }
  // the same image as given: the same original scores whatever the masks
  assert.equal(fromSeg.original, fromRow.original);
  assert.equal([...fromSeg.overlayPng!.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
  assert.is(fromSeg.masks!.bits.length, fromSeg.masks!.size ** 2);
  assert.ok(fromSeg.masks!.bits.some((b) => b !== 0));
});

test('createServer: /healthz, and /predict answers what the predictor answers', async () => {
  const index = await ChexmaskIndex.build(csv);
  const app = createServer({ predictor, chexmask: index, disposeOnClose: false });
  try {
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    assert.is(health.statusCode, 200);
    assert.equal(health.json(), {
      status: 'ok',
      kind: 'zeroshot',
      segmenter: true,
      pending: 0,
      maxQueue: 16,
      chexmaskRows: index.size,
    });
    const direct = await predictor.predict(jpeg, await index.row(dicomId));
    const r = await app.inject({ method: 'POST', url: `/predict?dicomId=${dicomId}`, payload: jpeg });
    assert.is(r.statusCode, 200, r.body);
    assert.equal(r.json(), { dicomId, ...direct });
    const bad = await app.inject({ method: 'POST', url: '/predict', payload: Buffer.from('not an image') });
    assert.is(bad.statusCode, 400);
    assert.is(bad.json().error, 'bad-image');
    const unknown = await app.inject({ method: 'POST', url: '/predict?dicomId=nope', payload: jpeg });
    assert.is(unknown.statusCode, 404);
    assert.is(unknown.json().error, 'unknown-id');
  } finally {
    await app.close();
    await index.close();
  }
  const e = new HttpError(413, 'too-large', 'body too large');
  assert.is(e.statusCode, 413);
  assert.is(e.code, 'too-large');
});

test('closeOnSignals: a signal closes the server, which frees the predictor, then exits 0', async () => {
  const own = await MaskingPredictor.load({ modelDir: MODEL_DIR, device: 'cpu' });
  const app = createServer({ predictor: own });
  await app.ready();
  const exited = new Promise<number>((ok) => {
    const remove = closeOnSignals(app, {
      signals: ['SIGUSR2'],
      exit: (code) => {
        remove();
        ok(code);
      },
    });
  });
  process.emit('SIGUSR2', 'SIGUSR2');
  assert.is(await exited, 0);
  const after = await Promise.resolve()
    .then(() => own.predict(jpeg))
    .catch((err: unknown) => err);
  assert.match(String(after), /disposed/);
});

test.run();
