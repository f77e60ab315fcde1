import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import type { ChexmaskRow } from '../../ts/data/chexmask.js';
import { formatLandmarksNumpy, regionPolygon } from '../../ts/data/landmarks.js';
import { encodeRle } from '../../ts/data/rle.js';
import { preprocess } from '../../ts/images/preprocess.js';
import { fillPolygon } from '../../ts/masks/raster.js';
import { renderFigure } from '../../ts/report/figure.js';

import { cc0Image, FIXTURES, tempDir } from '../data/helpers.js';

/** Landmarks drawn by hand-ish on the image grid: ellipses where lungs and heart sit on a PA film. */
function ellipseLandmarks(w: number, h: number): Float64Array {
  const lm = new Float64Array(240);
  const put = (off: number, n: number, cx: number, cy: number, rx: number, ry: number) => {
    for (let k = 0; k < n; k++) {
      const t = (2 * Math.PI * k) / n;
      lm[2 * (off + k)] = Math.round(cx + rx * Math.cos(t));
      lm[2 * (off + k) + 1] = Math.round(cy + ry * Math.sin(t));
    }
  };
  put(0, 44, w * 0.3, h * 0.45, w * 0.18, h * 0.32);
  put(44, 50, w * 0.72, h * 0.45, w * 0.18, h * 0.32);
  put(94, 26, w * 0.55, h * 0.62, w * 0.17, h * 0.12);
  return lm;
}

async function image(): Promise<{ path: string; w: number; h: number }> {
  const path = cc0Image() ?? join(FIXTURES, 'phantom-640x768.jpg');
  const m = await sharp(path).metadata();
  return { path, w: m.width as number, h: m.height as number };
}

test('service path: a raw CSV record, a parsed row and region masks give the same masked tensor', async () => {
  const { path, w, h } = await image();
  const lm = ellipseLandmarks(w, h);
  const masks = (['rightLung', 'leftLung', 'heart'] as const).map((r) =>
    fillPolygon(regionPolygon(lm, r), w, h, new Uint8Array(w * h)),
  );
  const record = {
    dicom_id: 'cc0',
    'Dice RCA (Mean)': '0.9',
    'Dice RCA (Max)': '0.95',
    Landmarks: formatLandmarksNumpy(lm),
    'Right Lung': encodeRle(masks[0], h, w),
    'Left Lung': encodeRle(masks[1], h, w),
    Heart: encodeRle(masks[2], h, w),
    Height: String(h),
    Width: String(w),
  };
  const viaRecord = await preprocess(path, record, { overlay: { source: 'rle' } });
  const row: ChexmaskRow = {
    dicomId: 'cc0',
    diceMean: 0.9,
    diceMax: 0.95,
    height: h,
    width: w,
    landmarks: lm,
    emptyMasks: [],
  };
  const viaRow = await preprocess(path, row);
  const viaMasks = await preprocess(path, {
    width: w,
    height: h,
    masks: { rightLung: masks[0], leftLung: masks[1], heart: masks[2] },
  });
  assert.ok(viaRecord.masked && viaRow.masked && viaMasks.masked);
  assert.equal(Array.from(viaRecord.original), Array.from(viaRow.original));
  // RLE and region masks are resampled the same way; both agree with the landmark polygons almost everywhere
  assert.equal(Array.from(viaRecord.contour as Uint8Array), Array.from(viaMasks.contour as Uint8Array));
  let diff = 0;
  let on = 0;
  const a = viaRow.contour as Uint8Array;
  const b = viaMasks.contour as Uint8Array;
  for (let p = 0; p < a.length; p++) {
    on += a[p] ? 1 : 0;
    diff += (a[p] ? 1 : 0) !== (b[p] ? 1 : 0) ? 1 : 0;
  }
  assert.ok(on > 500 && diff / on < 0.35, `landmark vs mask contours differ on ${diff} of ${on} pixels`);
  // a record whose Height/Width are swapped is refused, naming the field
  try {
    await preprocess(
      path,
      { ...record, Height: String(w), Width: String(h) },
      { overlay: { source: 'landmarks' } },
    );
    assert.unreachable();
  } catch (e) {
    assert.instance(e, DataError);
    assert.match((e as Error).message, w === h ? /do not match/ : /swapped/);
  }
});

test('Figure 1: pair at full resolution, masked alone on the 224 grid', async () => {
  const { path, w, h } = await image();
  const row: ChexmaskRow = {
    dicomId: 'x',
    diceMean: 0.9,
    diceMax: 0.9,
    height: h,
    width: w,
    landmarks: ellipseLandmarks(w, h),
    emptyMasks: [],
  };
  const out = join(tempDir(), 'fig.png');
  const pair = await renderFigure(path, row, { overlay: { alpha: 0.8 } }, out);
  assert.is(pair.height, h);
  assert.ok(pair.width > 2 * w);
  const m = await sharp(out).metadata();
  assert.is(m.width, pair.width);
  const small = await renderFigure(path, row, { layout: 'masked', grid: 'preprocessed' });
  assert.equal([small.width, small.height], [224, 224]);
  // the right half of the pair is red/blue only on the contour: left and right halves agree elsewhere
  const { data, info } = await sharp(pair.data).raw().toBuffer({ resolveWithObject: true });
  let coloured = 0;
  const gap = pair.width - 2 * w;
  for (let i = 0; i < h; i += 3)
    for (let j = 0; j < w; j += 3) {
      const L = (i * info.width + j) * info.channels;
      const R = (i * info.width + j + w + gap) * info.channels;
      if (data[L] !== data[R] || data[L + 2] !== data[R + 2]) coloured++;
    }
  assert.ok(coloured > 50 && coloured < (h * w) / 9 / 5, `${coloured} sampled pixels differ`);
});

test.run();
