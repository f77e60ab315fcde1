/**
 * MaskingPredictor with a segmenter: an image without a CheXmask row is masked with predicted regions.
 * The addon's Segmenter (models/seg-tiny) runs end to end; the other segmenter here returns a fixed, known mask — the fixture's CheXmask landmarks rasterised on the
 * model grid — so the predicted-mask path must give exactly what the CheXmask-row path gives (same
 * contour, same tensor, same probabilities), on the real tiny model, sharp and the raster code.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { FINDINGS } from '../../ts/common/labels.js';
import { type ChexmaskRow, joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { preprocess } from '../../ts/images/preprocess.js';
import { contourMap, overlayRgb } from '../../ts/masks/overlay.js';
import { preprocessFor } from '../../ts/model/backend-real.js';
import { readModelMeta } from '../../ts/model/meta.js';
import { Segmenter, type SegmenterLike } from '../../ts/model/segmenter.js';
import { MaskingPredictor } from '../../ts/service/predictor.js';
import { contourFromRegionBits, regionBitsOnGrid } from '../../ts/service/region-bits.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { assertSameArray } from './same-array.js';

const MODEL = 'models/tiny';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-svc-seg-'));
let image: { path: string; bytes: Buffer; row: ChexmaskRow };
const opts = { preprocess: preprocessFor(readModelMeta(MODEL)) };
const SIZE = readModelMeta(MODEL).imageSize;

/** Test input: a segmenter that always "predicts" the given region bits, recording what it was fed. */
class FixedMaskSegmenter implements SegmenterLike {
  inputs: Float32Array[] = [];
  disposed = false;
  constructor(
    readonly size: number,
    private readonly bits: Uint8Array,
  ) {}
  async predictMasks(x: Float32Array, n: number): Promise<Uint8Array> {
    assert.is(x.length, n * 3 * this.size * this.size);
    this.inputs.push(x.slice());
    const out = new Uint8Array(n * this.bits.length);
    for (let i = 0; i < n; i++) out.set(this.bits, i * this.bits.length);
    return out;
  }
  async dispose() {
    this.disposed = true;
  }
}

test.before(async () => {
  const out = join(tmp, 'data');
  await synthesize({ out, n: 8, seed: 3, width: 256, height: 288 });
  const { entries } = await buildIndex({ root: join(out, 'mimic') });
  const { rows } = await joinChexmask(
    join(out, 'chexmask', 'MIMIC-CXR-JPG.csv'),
    entries.map((e) => e.dicomId),
  );
  const e = entries.find((x) => rows.has(x.dicomId))!;
  const path = join(out, 'mimic', e.path);
  image = { path, bytes: readFileSync(path), row: rows.get(e.dicomId)! };
});

test('contour of rasterised CheXmask region bits equals contourMap of the row', async () => {
  const pp = await preprocess(image.path, image.row, opts);
  const bits = regionBitsOnGrid(image.row, pp.geometry);
  for (const t of [1, 2, 3]) {
    assertSameArray(
      contourFromRegionBits(bits, SIZE, t),
      contourMap(image.row, pp.geometry, { thickness: t }),
      `thickness ${t}`,
    );
  }
  assert.ok(
    [1, 2, 4].every((b) => bits.some((v) => v & b)),
    'the fixture has both lungs and the heart',
  );
  assert.throws(() => contourFromRegionBits(bits.subarray(1), SIZE, 2), /pixels/);
});

test('JPEG alone + segmenter: masked probabilities, overlay and masks equal the CheXmask-row path', async () => {
  const pp = await preprocess(image.path, image.row, opts);
  const bits = regionBitsOnGrid(image.row, pp.geometry);
  const seg = new FixedMaskSegmenter(SIZE, bits);
  const p = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu', segmenter: seg, untrained: true });
  const extras = { overlay: true, masks: true };
  const fromRow = await p.predict(image.bytes, image.row, extras);
  assert.is(seg.inputs.length, 0, 'a CheXmask row wins over the segmenter');
  const fromSeg = await p.predict(image.bytes, null, extras);
  assert.is(fromRow.maskSource, 'chexmask');
  assert.is(fromSeg.maskSource, 'segmenter');
  assert.is(seg.inputs.length, 1);
  assertSameArray(seg.inputs[0]!, pp.original, 'the segmenter sees the normalised original image');
  assert.equal(fromSeg.original, fromRow.original);
  assert.equal(fromSeg.masked, fromRow.masked);
  assert.equal(fromSeg.delta, fromRow.delta);
  assert.ok(
    FINDINGS.some((f) => fromSeg.delta![f] !== 0),
    'the contours change the model input, so some score moves',
  );
  assert.is(fromSeg.masks!.size, SIZE);
  assertSameArray(fromSeg.masks!.bits, bits, 'predicted region bits');
  assertSameArray(fromRow.masks!.bits, bits, 'CheXmask region bits');
  assert.ok(fromSeg.overlayPng!.equals(fromRow.overlayPng!));
  const { data, info } = await sharp(fromSeg.overlayPng!).raw().toBuffer({ resolveWithObject: true });
  assert.equal([info.width, info.height, info.channels], [SIZE, SIZE, 3]);
  assertSameArray(data, overlayRgb(pp.gray, pp.contour), 'overlay PNG');

  // Without extras: no overlay or masks fields; concurrent calls are queued and agree.
  const many = await Promise.all([1, 2, 3].map(() => p.predict(image.path)));
  for (const m of many) {
    assert.equal(m.masked, fromSeg.masked);
    assert.is(m.overlayPng, undefined);
    assert.is(m.masks, undefined);
  }
  await p.dispose();
  assert.ok(seg.disposed, 'the predictor disposes its segmenter');
});

test('no row, no segmenter: original only; a wrong-size segmenter is refused at load', async () => {
  const p = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu' });
  const r = await p.predict(image.bytes, null, { overlay: true, masks: true });
  assert.is(r.maskSource, null);
  assert.is(r.masked, null);
  assert.is(r.overlayPng, null);
  assert.is(r.masks, null);
  await p.dispose();
  const wrong = new FixedMaskSegmenter(SIZE + 8, new Uint8Array((SIZE + 8) ** 2));
  await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu', segmenter: wrong }).then(
    () => assert.unreachable('a segmenter on another grid must be refused'),
    (e: Error) => {
      assert.instance(e, ConfigError);
      assert.match(e.message, new RegExp(`${SIZE + 8}×${SIZE + 8}.*${SIZE}×${SIZE}`));
    },
  );
});

test('a segmenter returning the wrong number of pixels is an error, not a wrong answer', async () => {
  const bad: SegmenterLike = {
    size: SIZE,
    predictMasks: async () => new Uint8Array(10),
    dispose: async () => {},
  };
  const p = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu', segmenter: bad });
  await p.predict(image.bytes).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /returned 10 mask pixels/),
  );
  await p.dispose();
});

test('the real tiny Segmenter (addon): JPEG alone → its masks, drawn as a fixed mask of the same bits would be', async () => {
  const pp = await preprocess(image.bytes, null, opts);
  const direct = await Segmenter.load('models/seg-tiny', { device: 'cpu' });
  const bits = await direct.predictMasks(pp.original, 1);
  await direct.dispose();
  assert.ok(
    [1, 2, 4].every((b) => bits.some((v) => v & b)),
    'the random-init segmenter marks some pixels of each structure',
  );
  const seg = await Segmenter.load('models/seg-tiny', { device: 'cpu' });
  const p = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu', segmenter: seg, untrained: true });
  const got = await Promise.all([1, 2].map(() => p.predict(image.bytes, null, { masks: true })));
  await p.dispose();
  assert.ok(seg.disposed, 'disposed with the predictor');
  const fixed = await MaskingPredictor.load({
    modelDir: MODEL,
    device: 'cpu',
    segmenter: new FixedMaskSegmenter(SIZE, bits),
  });
  const want = await fixed.predict(image.bytes, null);
  await fixed.dispose();
  for (const g of got) {
    assert.is(g.maskSource, 'segmenter');
    assertSameArray(g.masks!.bits, bits, 'predicted region bits');
    // two calls batched together against a lone call: equal up to float rounding (docs/service.md)
    for (const f of FINDINGS) {
      assert.ok(Math.abs(g.masked![f] - want.masked![f]) < 1e-5, `masked ${f}`);
      assert.ok(Math.abs(g.original[f] - want.original[f]) < 1e-5, `original ${f}`);
    }
  }
  assert.ok(
    FINDINGS.some((f) => got[0]!.delta![f] !== 0),
    'the predicted contours change the model input',
  );
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
