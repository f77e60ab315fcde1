import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mulberry32 } from '../../ts/common/random.js';
import type { ChexmaskRow } from '../../ts/data/chexmask.js';
import { regionPolygon } from '../../ts/data/landmarks.js';
import { encodeRle } from '../../ts/data/rle.js';
import { planeToTensor, resolvePreprocess } from '../../ts/images/preprocess.js';
import { computeGeometry, identityGeometry } from '../../ts/masks/geometry.js';
import { contourMap, overlayRgb, paintTable, regionMasksOnGrid } from '../../ts/masks/overlay.js';
import { bitsBoundary, fillPolygon, maskBoundary } from '../../ts/masks/raster.js';
import { renderFigure } from '../../ts/report/figure.js';
import { renderFrontal } from '../../ts/synth/phantom.js';

function blob(w: number, h: number, seed: number): Uint8Array {
  const rnd = mulberry32(seed);
  const m = new Uint8Array(w * h);
  for (let k = 0; k < 3; k++) {
    const cx = rnd() * w;
    const cy = rnd() * h;
    const rx = 3 + rnd() * w * 0.3;
    const ry = 3 + rnd() * h * 0.3;
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) if (((j - cx) / rx) ** 2 + ((i - cy) / ry) ** 2 < 1) m[i * w + j] = 1;
  }
  return m;
}

/** Mask pixels with a 4-neighbour inside the grid that is not in the mask. */
function boundary(m: Uint8Array, w: number, h: number): Uint8Array {
  const b = new Uint8Array(w * h);
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      const p = i * w + j;
      if (!m[p]) continue;
      if (
        (j > 0 && !m[p - 1]) ||
        (j < w - 1 && !m[p + 1]) ||
        (i > 0 && !m[p - w]) ||
        (i < h - 1 && !m[p + w])
      )
        b[p] = 1;
    }
  return b;
}

test('thickness 1: contour pixels are exactly the mask boundary (on it, and nowhere else)', () => {
  for (let s = 0; s < 20; s++) {
    const w = 40 + s;
    const h = 50 - s;
    const m = blob(w, h, s);
    const c = maskBoundary(m, w, h, 1);
    assert.equal(Array.from(c), Array.from(boundary(m, w, h)), `seed ${s}`);
  }
});

test('thickness t: contour ⊂ mask, each pixel within t steps of the outside, boundary ⊂ contour', () => {
  const w = 64;
  const h = 48;
  for (let s = 0; s < 10; s++) {
    const m = blob(w, h, 100 + s);
    for (const t of [2, 3]) {
      const c = maskBoundary(m, w, h, t);
      const b = boundary(m, w, h);
      for (let p = 0; p < w * h; p++) {
        if (c[p]) assert.ok(m[p], 'contour pixel outside the mask');
        if (b[p]) assert.ok(c[p], 'boundary pixel missing from the contour');
        if (c[p]) {
          // 4-distance to a non-mask pixel of the grid ≤ t
          const i = Math.floor(p / w);
          const j = p % w;
          let near = false;
          for (let di = -t; di <= t && !near; di++)
            for (let dj = -t; dj <= t && !near; dj++) {
              if (Math.abs(di) + Math.abs(dj) > t) continue;
              const ii = i + di;
              const jj = j + dj;
              if (ii >= 0 && ii < h && jj >= 0 && jj < w && !m[ii * w + jj]) near = true;
            }
          assert.ok(near, `contour pixel (${i},${j}) is deeper than ${t}`);
        }
      }
    }
  }
});

test('a mask cut by the grid edge gets no line along the edge', () => {
  const w = 10;
  const h = 10;
  const m = new Uint8Array(w * h).fill(1);
  assert.is(
    maskBoundary(m, w, h, 2).reduce((a, b) => a + b, 0),
    0,
  );
});

/** The per-mask erosion as first written (branching on each neighbour), the reference for bitsBoundary. */
function erodedBand(m: Uint8Array, w: number, h: number, thickness: number): Uint8Array {
  let cur = Uint8Array.from(m, (v) => (v ? 1 : 0));
  for (let t = 0; t < thickness; t++) {
    const next = new Uint8Array(w * h);
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        const p = i * w + j;
        next[p] =
          cur[p] &&
          (j === 0 || cur[p - 1]) &&
          (j === w - 1 || cur[p + 1]) &&
          (i === 0 || cur[p - w]) &&
          (i === h - 1 || cur[p + w])
            ? 1
            : 0;
      }
    cur = next;
  }
  return Uint8Array.from(m, (v, p) => (v && !cur[p] ? 1 : 0));
}

test('bitsBoundary erodes every bit as its own mask: each bit of the result is that mask’s band', () => {
  // one-pixel-wide, one-row and full grids included: the edge rules are where a shared pass could slip
  const shapes = [
    [40, 50],
    [1, 9],
    [9, 1],
    [1, 1],
    [2, 3],
    [33, 17],
  ] as const;
  for (const [w, h] of shapes) {
    for (let s = 0; s < 6; s++) {
      const masks = [0, 1, 2, 7].map((k) =>
        s === 5 ? new Uint8Array(w * h).fill(1) : blob(w, h, 10 * s + k),
      );
      const planes = new Uint8Array(w * h);
      const bits = [1, 2, 4, 128];
      masks.forEach((m, k) => {
        for (let p = 0; p < w * h; p++) if (m[p]) planes[p] |= bits[k]!;
      });
      const before = planes.slice();
      for (const t of [1, 2, 3, 5]) {
        const out = new Uint8Array(w * h).fill(8); // ORed into, not overwritten
        bitsBoundary(planes, w, h, t, out);
        masks.forEach((m, k) => {
          const want = erodedBand(m, w, h, t);
          const got = Uint8Array.from(out, (v) => (v & bits[k]! ? 1 : 0));
          assert.equal(
            Array.from(got),
            Array.from(want),
            `${w}×${h} seed ${s} bit ${bits[k]} thickness ${t}`,
          );
          assert.equal(Array.from(maskBoundary(m, w, h, t)), Array.from(want));
        });
        assert.ok(out.every((v) => v & 8));
      }
      assert.equal(Array.from(planes), Array.from(before), 'planes left as they were');
    }
  }
});

test('overlayRgb: every gray level under every contour bit combination, as Eq. 1 by the pixel', () => {
  const paint = { alpha: 0.37 };
  const table = paintTable(paint);
  const gray = new Uint8Array(256 * 8);
  const contour = new Uint8Array(256 * 8);
  for (let b = 0; b < 8; b++)
    for (let v = 0; v < 256; v++) {
      gray[b * 256 + v] = v;
      contour[b * 256 + v] = b | (b << 3); // fill bits (3-5) are not painted
    }
  const rgb = overlayRgb(gray, contour, paint);
  const plain = overlayRgb(gray, null, paint);
  for (let p = 0; p < gray.length; p++)
    for (let c = 0; c < 3; c++) {
      const b = contour[p]! & 7;
      assert.is(rgb[p * 3 + c], Math.round(Math.min(1, gray[p]! / 255 + table[b * 3 + c]!) * 255));
      assert.is(plain[p * 3 + c], gray[p]);
    }
});

function phantomRow(): { row: ChexmaskRow; w: number; h: number; masks: Uint8Array[] } {
  const w = 300;
  const h = 360;
  const ph = renderFrontal(
    mulberry32(3),
    w,
    h,
    { atelectasis: false, cardiomegaly: true, consolidation: false, edema: false, effusion: true },
    false,
  );
  const lm = ph.landmarks as Float64Array;
  const masks = (['rightLung', 'leftLung', 'heart'] as const).map((r) =>
    fillPolygon(regionPolygon(lm, r), w, h, new Uint8Array(w * h)),
  );
  const row: ChexmaskRow = {
    dicomId: 'x',
    diceMean: 0.9,
    diceMax: 0.95,
    height: h,
    width: w,
    landmarks: lm,
    rle: {
      rightLung: encodeRle(masks[0], h, w),
      leftLung: encodeRle(masks[1], h, w),
      heart: encodeRle(masks[2], h, w),
    },
    emptyMasks: [],
  };
  return { row, w, h, masks };
}

test('landmark and RLE sources agree: exactly on the source grid, closely on the 224 grid', () => {
  const { row, w, h } = phantomRow();
  const g = identityGeometry(w, h);
  assert.equal(
    Array.from(contourMap(row, g, { source: 'rle' })),
    Array.from(contourMap(row, g, { source: 'landmarks' })),
  );
  const g224 = computeGeometry(w, h, 224, 'shortest-crop');
  const a = regionMasksOnGrid(row, g224, 'landmarks');
  const b = regionMasksOnGrid(row, g224, 'rle');
  for (const r of ['rightLung', 'leftLung', 'heart'] as const) {
    let inter = 0;
    let uni = 0;
    const ma = a[r] as Uint8Array;
    const mb = b[r] as Uint8Array;
    for (let p = 0; p < ma.length; p++) {
      inter += ma[p] & mb[p];
      uni += ma[p] | mb[p];
    }
    assert.ok(inter / uni > 0.95, `${r} IoU ${inter / uni}`);
  }
});

test('Eq. 1: masked equals original exactly outside the contour, and differs on it', () => {
  const { row, w, h } = phantomRow();
  const g = computeGeometry(w, h, 224, 'shortest-crop');
  const c = contourMap(row, g, { thickness: 2 });
  const rnd = mulberry32(9);
  const gray = new Uint8Array(224 * 224).map(() => Math.floor(rnd() * 255));
  const pp = resolvePreprocess();
  const orig = planeToTensor(gray, null, pp, null);
  const masked = planeToTensor(gray, c, pp, paintTable({ alpha: 0.5 }));
  let on = 0;
  for (let p = 0; p < 224 * 224; p++) {
    const same = [0, 1, 2].every((ch) => orig[ch * 224 * 224 + p] === masked[ch * 224 * 224 + p]);
    if (c[p]) {
      on++;
      assert.ok(!same, 'contour pixel unchanged');
    } else assert.ok(same, 'pixel outside the contour changed');
  }
  assert.ok(on > 500, `too few contour pixels: ${on}`);
  // lungs red (bits 1, 2), heart blue (bit 4)
  const lungPix = c.indexOf(1);
  assert.ok(masked[lungPix] > orig[lungPix] || gray[lungPix] > 127);
  assert.is(masked[2 * 224 * 224 + lungPix], orig[2 * 224 * 224 + lungPix]);
});

test('renderFigure at full resolution scales the band past the option cap (a real-size X-ray, default thickness)', async () => {
  // 1900×2000: the default thickness 2 scales to round(2·1900/224) = 17 px, above the option's cap of 16
  const W = 1900;
  const H = 2000;
  const heart = new Uint8Array(W * H);
  for (let y = 500; y < 1500; y++) heart.fill(1, y * W + 400, y * W + 1400);
  const gray = await sharp(Buffer.alloc(W * H), { raw: { width: W, height: H, channels: 1 } })
    .png()
    .toBuffer();
  const fig = await renderFigure(gray, { width: W, height: H, masks: { heart } }, { layout: 'masked' });
  assert.equal([fig.width, fig.height], [W, H]);
  const { data } = await sharp(fig.data).raw().toBuffer({ resolveWithObject: true });
  // along row 1000 the heart's band is blue from x = 400 to 416 and black from 417
  const blue = (x: number) => data[(1000 * W + x) * 3 + 2]! > 128;
  assert.equal(
    [blue(399), blue(400), blue(416), blue(417), blue(1383), blue(1399), blue(1400)],
    [false, true, true, false, true, true, false],
  );
  // the same band from contourMap with the scale, and the option itself still capped
  const bits = contourMap({ width: W, height: H, masks: { heart } }, identityGeometry(W, H), {}, W / 224);
  assert.is(bits[1000 * W + 416], 4);
  assert.is(bits[1000 * W + 417], 0);
  assert.throws(
    () => contourMap({ width: W, height: H, masks: { heart } }, identityGeometry(W, H), { thickness: 17 }),
    /thickness/,
  );
});

test.run();
