/**
 * What reaches a decoder: only regular files (a symlink to /dev/zero, a FIFO or a folder is refused
 * without being read, so nothing hangs or fills memory), files within the byte cap, JPEG/PNG by their
 * leading bytes (SVG, GIF, TIFF and WebP never reach librsvg/libgif/libtiff/libwebp), and headers
 * within the pixel cap (a 1 MB progressive JPEG declaring 16383×16383 is refused before decoding).
 * Region masks must be width×height. The same checks hold in preprocess, decodePlane, decodeFull,
 * renderFigure and buildCache.
 *
 * The bomb fixture is a real file, gzipped (1.3 KB; 1.05 MB unpacked), made with
 *   sharp({ create: { width: 16383, height: 16383, channels: 3, background: '#808080' },
 *           limitInputPixels: false }).toColourspace('b-w').jpeg({ progressive: true, quality: 90 })
 */

import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readFileSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, readImageFile } from '../../ts/images/input.js';
import { decodeFull, decodePlane, preprocess, resolvePreprocess } from '../../ts/images/preprocess.js';
import { computeGeometry } from '../../ts/masks/geometry.js';
import { contourMap, maskPlane, type RegionMasks } from '../../ts/masks/overlay.js';
import { renderFigure } from '../../ts/report/figure.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { FIXTURES, tempDir } from '../data/helpers.js';

const PHANTOM = join(FIXTURES, 'phantom-640x768.jpg');
const BOMB = gunzipSync(
  readFileSync(join(import.meta.dirname, 'fixtures', 'progressive-16383x16383.jpg.gz')),
);
const pp = resolvePreprocess();
const dir = tempDir('cxrmask-input-');

/** The refusal of `p` (a DataError), or a failure naming `what` if it resolves or takes over 10 s. */
async function refusal(p: Promise<unknown>, what: string): Promise<DataError> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within 10 s`)), 10_000);
  });
  try {
    await Promise.race([p, late]);
  } catch (e) {
    if (e instanceof DataError) return e;
    throw e;
  } finally {
    clearTimeout(timer);
  }
  throw new Error(`${what}: accepted`);
}

const fifos: string[] = [];
function fifo(name: string): string {
  const p = join(dir, name);
  execFileSync('mkfifo', [p]);
  fifos.push(p);
  return p;
}

/** Opens and closes each FIFO's other end: a read that blocked on one (the defect) then ends, and so can this process. */
test.after(() => {
  for (const p of fifos) closeSync(openSync(p, constants.O_RDWR | constants.O_NONBLOCK));
});

test('defaults sit well above real X-rays (~10 MP, a few MB) and below what fills a server', () => {
  assert.is(DEFAULT_MAX_PIXELS, 50_000_000);
  assert.is(DEFAULT_MAX_FILE_BYTES, 256 * 2 ** 20);
});

test('a path that is not a regular file is refused without reading it: /dev/zero, a FIFO, a folder', async () => {
  const zero = join(dir, 'zero.jpg');
  symlinkSync('/dev/zero', zero);
  const pipe = fifo('pipe.jpg');
  const folder = join(dir, 'folder.jpg');
  mkdirSync(folder);
  const rss0 = process.memoryUsage().rss;
  for (const [path, kind] of [
    [zero, 'a character device'],
    [pipe, 'a FIFO'],
    [folder, 'a folder'],
  ] as const) {
    for (const [what, call] of [
      ['readImageFile', () => readImageFile(path)],
      ['decodePlane', () => decodePlane(path, pp)],
      ['decodeFull', () => decodeFull(path)],
      ['preprocess', () => preprocess(path)],
    ] as const) {
      const e = await refusal(call(), `${what}(${kind})`);
      assert.is(e.reason, 'image-not-file', `${what} ${kind}: ${e.message}`);
      assert.is(e.where.file, path);
      assert.ok(e.message.startsWith(`${path}: not a regular file (${kind})`), e.message);
    }
  }
  const grew = process.memoryUsage().rss - rss0;
  assert.ok(grew < 64 << 20, `RSS grew ${(grew / 2 ** 20).toFixed(0)} MB`);
  // A symlink to a real image is followed.
  const link = join(dir, 'link.jpg');
  symlinkSync(PHANTOM, link);
  assert.is((await decodePlane(link, pp)).gray.length, 224 * 224);
});

test('byte cap: a 300 MB file is refused by default before it is read; the cap is settable', async () => {
  const big = join(dir, 'big.jpg');
  writeFileSync(big, readFileSync(PHANTOM));
  truncateSync(big, 300 << 20); // sparse: a JPEG head and 300 MB of zeros
  const rss0 = process.memoryUsage().rss;
  const e = await refusal(preprocess(big), 'default cap');
  assert.is(e.reason, 'image-too-large');
  assert.match(e.message, `${big}: image file is ${300 << 20} bytes, over the limit of ${256 << 20}`);
  assert.ok(process.memoryUsage().rss - rss0 < 64 << 20, 'not read');
  unlinkSync(big);
  const size = readFileSync(PHANTOM).length;
  const small = await refusal(decodePlane(PHANTOM, pp, { maxFileBytes: size - 1 }), 'settable cap');
  assert.is(small.reason, 'image-too-large');
  const buf = await refusal(
    preprocess(readFileSync(PHANTOM), null, { limits: { maxFileBytes: 1000 } }),
    'buffer',
  );
  assert.match(buf.message, /^<buffer>: image file is \d+ bytes, over the limit of 1000/);
  assert.is((await decodePlane(PHANTOM, pp, { maxFileBytes: size })).gray.length, 224 * 224);
});

test('pixel cap from the header: a 16383² progressive JPEG is refused before decoding', async () => {
  assert.ok(BOMB.length > 1_000_000 && BOMB.length < 1_100_000);
  const path = join(dir, 'bomb.jpg');
  writeFileSync(path, BOMB);
  const rss0 = process.memoryUsage().rss;
  for (const [what, call] of [
    ['decodePlane(path)', () => decodePlane(path, pp)],
    ['preprocess(buffer)', () => preprocess(BOMB)],
    ['decodeFull(path)', () => decodeFull(path)],
    ['renderFigure', () => renderFigure(BOMB, { width: 16383, height: 16383, masks: { heart: null } })],
  ] as const) {
    const e = await refusal(call(), what);
    assert.is(e.reason, 'image-too-large', `${what}: ${e.message}`);
    assert.match(
      e.message,
      'image is 16383×16383 (268402689 pixels), over the limit of 50000000 (maxPixels)',
    );
  }
  // Decoding it takes ~800 MB (the coefficients of a progressive JPEG are held whole).
  const grew = process.memoryUsage().rss - rss0;
  assert.ok(grew < 50 << 20, `RSS grew ${(grew / 2 ** 20).toFixed(0)} MB over 4 refusals`);
  // Settable: the 640×768 phantom (491,520 pixels) against a cap just below and at its size.
  const e = await refusal(decodePlane(PHANTOM, pp, { maxPixels: 640 * 768 - 1 }), 'settable');
  assert.match(e.message, 'image is 640×768 (491520 pixels), over the limit of 491519');
  assert.is((await decodePlane(PHANTOM, pp, { maxPixels: 640 * 768 })).geometry.srcW, 640);
  await decodePlane(PHANTOM, pp, { maxPixels: 0 }).then(
    () => assert.unreachable('a zero cap is refused'),
    (e: Error) => assert.match(e.message, "image limits option 'maxPixels'"),
  );
});

test('only JPEG and PNG reach a decoder: SVG, GIF, TIFF and WebP are refused by their leading bytes', async () => {
  const small = sharp(PHANTOM).resize(64, 80);
  const bodies: Record<string, Buffer> = {
    svg: Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="80"><rect width="64" height="80"/></svg>',
    ),
    gif: await small.clone().gif().toBuffer(),
    tiff: await small.clone().tiff().toBuffer(),
    webp: await small.clone().webp().toBuffer(),
  };
  for (const [fmt, body] of Object.entries(bodies)) {
    // sharp itself decodes every one of them: the refusal is ours.
    assert.is((await sharp(body).metadata()).width, 64, fmt);
    const path = join(dir, `${fmt}-as.jpg`);
    writeFileSync(path, body);
    for (const input of [path, body]) {
      const e = await refusal(preprocess(input), fmt);
      assert.is(e.reason, 'image-corrupt', `${fmt}: ${e.message}`);
      assert.match(e.message, /not a JPEG or PNG file \(its first bytes are [0-9a-f ]+\)/);
    }
  }
  const empty = await refusal(preprocess(Buffer.alloc(0)), 'empty');
  assert.match(empty.message, 'its first bytes are none: the file is empty');
  // JPEG and PNG still decode, whatever the file is called.
  const png = join(dir, 'png-as.jpg');
  writeFileSync(png, await small.clone().png().toBuffer());
  assert.is((await preprocess(png)).original.length, 3 * 224 * 224);
  assert.is((await preprocess(readFileSync(PHANTOM))).original.length, 3 * 224 * 224);
});

test('region masks must be width×height: quarter-size, empty, unknown or missing regions are refused', async () => {
  const w = 640;
  const h = 768;
  const full = new Uint8Array(w * h);
  for (let y = 200; y < 600; y++) full.fill(1, y * w + 100, y * w + 300);
  const good: RegionMasks = { width: w, height: h, masks: { rightLung: full } };
  const got = await preprocess(PHANTOM, good);
  assert.ok(
    got.contour!.some((v) => v !== 0),
    'a good mask draws contours',
  );
  const cases: [string, unknown, string][] = [
    [
      'quarter',
      { width: w, height: h, masks: { rightLung: new Uint8Array((w / 2) * (h / 2)) } },
      'masks.rightLung',
    ],
    ['empty', { width: w, height: h, masks: { heart: new Uint8Array(0) } }, 'masks.heart'],
    ['unknown region', { width: w, height: h, masks: { rightlung: full } }, 'masks.rightlung'],
    ['no region', { width: w, height: h, masks: { heart: null } }, 'masks'],
    ['plain array', { width: w, height: h, masks: { heart: Array.from(full) } }, 'masks.heart'],
    ['width', { width: 640.5, height: h, masks: { heart: full } }, 'width'],
    ['height', { width: w, height: -768, masks: { heart: full } }, 'height'],
  ];
  for (const [what, masks, field] of cases) {
    const e = await refusal(preprocess(PHANTOM, masks as RegionMasks), what);
    assert.is(e.reason, 'bad-masks', `${what}: ${e.message}`);
    assert.is(e.where.field, field, what);
    assert.is(e.where.file, PHANTOM);
  }
  const quarter = cases[0]![1] as RegionMasks;
  const e = await refusal(preprocess(PHANTOM, quarter), 'quarter');
  assert.match(e.message, 'mask has 122880 values, expected width×height = 640×768 = 491520');
  // Every entry point that draws masks checks them.
  const g = computeGeometry(w, h, 224, 'shortest-crop');
  assert.throws(() => contourMap(quarter, g), /masks\.rightLung.*122880 values/);
  assert.throws(() => maskPlane(quarter, g), /masks\.rightLung.*122880 values/);
  await refusal(renderFigure(PHANTOM, quarter), 'renderFigure');
  // A row's landmarks must be the 120 points.
  const row = { dicomId: 'x', diceMean: 1, diceMax: 1, height: h, width: w, emptyMasks: [] };
  const short = await refusal(preprocess(PHANTOM, { ...row, landmarks: new Float64Array(100) }), 'landmarks');
  assert.is(short.where.field, 'landmarks');
  assert.match(short.message, 'landmarks must be a Float64Array of 240 numbers, got 100');
});

test('cache build: a /dev/zero symlink, a FIFO, an SVG and an over-cap image are skipped and counted', async () => {
  const s = await synthesize({ out: join(dir, 'synth'), n: 12, seed: 3, width: 160, height: 192 });
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    entries.map((e) => e.dicomId),
    { minDice: 0 },
  );
  const usable = entries.filter((e) => rows.has(e.dicomId));
  assert.ok(usable.length >= 6);
  const [zero, pipe, svg, big] = usable.map((e) => join(s.mimicRoot, e.path));
  unlinkSync(zero!);
  symlinkSync('/dev/zero', zero!);
  unlinkSync(pipe!);
  execFileSync('mkfifo', [pipe!]);
  fifos.push(pipe!);
  writeFileSync(svg!, '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="192"/>');
  writeFileSync(big!, BOMB);
  const rss0 = process.memoryUsage().rss;
  const build = buildCache({
    entries: usable,
    root: s.mimicRoot,
    chexmask: rows,
    out: join(dir, 'cache'),
    concurrency: 2,
  });
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error('the cache build did not finish within 60 s')), 60_000).unref(),
  );
  const sum = await Promise.race([build, timeout]);
  const grew = process.memoryUsage().rss - rss0;
  assert.ok(grew < 128 << 20, `RSS grew ${(grew / 2 ** 20).toFixed(0)} MB`);
  assert.equal(sum.skipped.counts, { 'image-not-file': 2, 'image-corrupt': 1, 'image-too-large': 1 });
  assert.is(sum.cached, usable.length - 4);
  const examples = Object.values(sum.skipped.examples).flat().join('\n');
  assert.match(examples, `${zero}: not a regular file (a character device)`);
  assert.match(examples, `${pipe}: not a regular file (a FIFO)`);
  assert.match(examples, `${big}: image is 16383×16383`);
});

test.run();
