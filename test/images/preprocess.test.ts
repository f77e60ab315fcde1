import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CLIP_MEAN,
  CLIP_STD,
  decodePlane,
  IMAGENET_MEAN,
  preprocess,
  resolvePreprocess,
} from '../../ts/images/preprocess.js';

import { computeGeometry, pyRound } from '../../ts/masks/geometry.js';
import { cc0Image, FIXTURES } from '../data/helpers.js';

test('geometry follows torchvision Resize(224) + CenterCrop(224)', () => {
  assert.equal(computeGeometry(786, 899, 224, 'shortest-crop'), {
    srcW: 786,
    srcH: 899,
    resizeW: 224,
    resizeH: 256,
    left: 0,
    top: 16,
    outW: 224,
    outH: 224,
  });
  // 2544×3056 (typical MIMIC): int(224*3056/2544) = 269; round(45/2) = 22 (half to even)
  const g = computeGeometry(2544, 3056, 224, 'shortest-crop');
  assert.is(g.resizeH, 269);
  assert.is(g.top, 22);
  assert.is(computeGeometry(3000, 2500, 224, 'shortest-crop').left, pyRound((268 - 224) / 2));
  assert.equal([pyRound(0.5), pyRound(1.5), pyRound(2.5), pyRound(-0.5)], [0, 2, 2, -0]);
  assert.equal(computeGeometry(3000, 2500, 224, 'squash').resizeW, 224);
});

/**
 * Closeness to torchvision-on-PIL (reference planes made by fixtures/make_pil_reference.py with the
 * project's Python venv; committed so this test needs no Python). Measured when written:
 * phantom 640×768 MAD 0.0006 (max 1/255); CC0 786×899 MAD 0.0006 (max 1/255) biomedclip, 0.0012 (max 7/255) paper.
 */
async function compare(img: string, name: string, preset: 'biomedclip' | 'paper', fast: boolean) {
  const ref = await sharp(join(FIXTURES, `pil-${name}-${preset}.png`))
    .extractChannel(0)
    .raw()
    .toBuffer();
  const { gray } = await decodePlane(img, resolvePreprocess({ preset, fastShrinkOnLoad: fast }));
  let sum = 0;
  let max = 0;
  for (let i = 0; i < gray.length; i++) {
    const d = Math.abs(gray[i] - ref[i]) / 255;
    sum += d;
    if (d > max) max = d;
  }
  return { mad: sum / gray.length, max };
}

test('within 0.002 mean abs diff ([0,1] scale) of torchvision-on-PIL, both presets', async () => {
  const imgs: [string, string][] = [[join(FIXTURES, 'phantom-640x768.jpg'), 'phantom']];
  const cc0 = cc0Image();
  if (cc0) imgs.push([cc0, 'cc0']);
  for (const [img, name] of imgs) {
    for (const preset of ['biomedclip', 'paper'] as const) {
      const r = await compare(img, name, preset, false);
      assert.ok(r.mad < 0.002, `${name}/${preset}: MAD ${r.mad}`);
      assert.ok(r.max <= 8 / 255, `${name}/${preset}: max ${r.max * 255}/255`);
      const f = await compare(img, name, preset, true);
      assert.ok(f.mad < 0.004, `${name}/${preset} shrink-on-load: MAD ${f.mad}`);
    }
  }
});

test('tensors: CHW, gray replicated, normalised with the preset statistics', async () => {
  const img = join(FIXTURES, 'phantom-640x768.jpg');
  const r = await preprocess(img);
  assert.is(r.original.length, 3 * 224 * 224);
  assert.is(r.masked, null);
  const p = 224 * 100 + 77;
  for (let c = 0; c < 3; c++) {
    const want = (r.gray[p] / 255 - CLIP_MEAN[c]) / CLIP_STD[c];
    assert.ok(Math.abs(r.original[c * 224 * 224 + p] - want) < 1e-6);
  }
  const paper = await preprocess(img, null, { preprocess: { preset: 'paper' } });
  assert.equal(paper.settings.mean, [...IMAGENET_MEAN]);
  assert.is(paper.settings.resize, 'squash');
});

test('a Buffer works like a path', async () => {
  const img = join(FIXTURES, 'phantom-640x768.jpg');
  const { readFile } = await import('node:fs/promises');
  const a = await preprocess(img);
  const b = await preprocess(await readFile(img));
  assert.equal(Array.from(a.gray), Array.from(b.gray));
});

test('an unknown option is refused by name (imageLimits for limits would drop the pixel cap), as is a row that is no object', async () => {
  const img = join(FIXTURES, 'phantom-640x768.jpg');
  const refused = async (p: Promise<unknown>): Promise<Error> => {
    const e = await p.then(
      () => null,
      (x: unknown) => x as Error,
    );
    assert.ok(e, 'accepted');
    return e as Error;
  };
  const known = '(known: preprocess, overlay, limits)';
  for (const [options, message] of [
    [{ imageLimits: { maxPixels: 1000 } }, `unknown preprocess option 'imageLimits' ${known}`],
    [{ preproces: { size: 64 } }, `unknown preprocess option 'preproces' ${known}`],
    ['x', "preprocess option '(options)': Invalid input: expected object, received string"],
  ] as const) {
    const e = await refused(preprocess(img, null, options as never));
    assert.instance(e, TypeError);
    assert.is(e.message, message);
  }
  // the key it knows sets the cap
  const capped = await refused(preprocess(img, null, { limits: { maxPixels: 1000 } }));
  assert.match(capped.message, /over the limit of 1000 \(maxPixels\)/);
  // a dicom_id given instead of its row
  for (const [row, type] of [
    ['abc', 'string'],
    [42, 'number'],
    [true, 'boolean'],
    [[1, 2], 'Array'],
  ] as const) {
    const e = await refused(preprocess(img, row as never));
    assert.instance(e, TypeError);
    assert.is(e.message, `row must be a CheXmask row, a CSV record or region masks, got ${type}`);
  }
});

test('a plain Uint8Array (a view at an offset into a larger ArrayBuffer) works like a Buffer, every format', async () => {
  const jpg = readFileSync(join(FIXTURES, 'phantom-640x768.jpg'));
  const png8 = await sharp(jpg).grayscale().png().toBuffer();
  const png16 = await sharp(jpg).grayscale().toColourspace('grey16').png().toBuffer();
  const dcm = readFileSync(join(import.meta.dirname, 'fixtures', 'mono1-12bit-jpeg-lossless.dcm'));
  const limits = { formats: ['jpeg' as const, 'png' as const, 'dicom' as const] };
  assert.is((await sharp(png16).metadata()).depth, 'ushort');
  for (const [name, buf] of [
    ['jpeg', jpg],
    ['png8', png8],
    ['png16', png16],
    ['dicom', dcm],
  ] as const) {
    const backing = new ArrayBuffer(buf.length + 7);
    const view = new Uint8Array(backing, 3, buf.length);
    view.set(buf);
    const a = await preprocess(buf, null, { limits });
    const b = await preprocess(view, null, { limits });
    assert.equal(Array.from(b.gray), Array.from(a.gray), name);
  }
});

test.run();
