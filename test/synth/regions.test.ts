/** Finding regions of synthetic phantoms: recorded without changing a pixel, and where each finding is. */

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mulberry32 } from '../../ts/common/random.js';

import { computeGeometry, sampleMask } from '../../ts/masks/geometry.js';
import { FINDING_REGION_BITS, renderFrontal } from '../../ts/synth/phantom.js';
import { readRegionsOnGrid, regionsPath } from '../../ts/synth/regions.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { tempDir } from '../data/helpers.js';

const KEYS = ['atelectasis', 'cardiomegaly', 'consolidation', 'edema', 'effusion'] as const;

function shownOf(b: number) {
  return Object.fromEntries(KEYS.map((k, i) => [k, Boolean(b & (1 << i))])) as Record<
    (typeof KEYS)[number],
    boolean
  >;
}

test('recording regions changes no pixel: 32 phantoms (every finding combination) hash as before', () => {
  const h = createHash('sha256');
  for (let s = 0; s < 32; s++) {
    const ph = renderFrontal(mulberry32(1000 + s), 200, 240, shownOf(s), s % 3 === 0);
    h.update(ph.pixels);
    h.update(new Uint8Array(Float64Array.from(ph.landmarks!).buffer));
  }
  // Recorded with the generator before regions existed (commit 62a3ca0).
  assert.is(h.digest('hex'), '897d56c1f3bb94888220a9fbe840ce69fc5483119a07d0558a2827bb05076d03');
});

test('each shown finding has a region of its own bit; findings not shown have none', () => {
  for (let s = 0; s < 32; s++) {
    const f = shownOf(s);
    const ph = renderFrontal(mulberry32(2000 + s), 160, 192, f, false);
    const area = new Map<string, number>();
    for (const k of KEYS) {
      let n = 0;
      for (const v of ph.regions!) if (v & FINDING_REGION_BITS[k]) n++;
      area.set(k, n / ph.regions!.length);
    }
    for (const k of KEYS) {
      const a = area.get(k)!;
      if (f[k]) assert.ok(a > 0.001 && a < 0.3, `${k} area share ${a} (seed ${s})`);
      else assert.is(a, 0, `${k} not shown but has a region (seed ${s})`);
    }
  }
});

test('a region is where the finding changed the image: rendering with and without it differs there', () => {
  // Same stream with consolidation off vs on would shift later draws; compare the drawn finding's
  // own contribution instead: the region's mean brightness exceeds the lung's outside it.
  const ph = renderFrontal(mulberry32(77), 200, 240, shownOf(4), false);
  let inS = 0;
  let inN = 0;
  let all = 0;
  for (let p = 0; p < ph.pixels.length; p++) {
    all += ph.pixels[p]!;
    if (ph.regions![p]! & FINDING_REGION_BITS.consolidation) {
      inS += ph.pixels[p]!;
      inN++;
    }
  }
  assert.ok(inN > 0);
  assert.ok(inS / inN > all / ph.pixels.length, 'consolidation region is not brighter than the image mean');
});

test('synthesize writes a regions sidecar per frontal image with findings; read back on a model grid', async () => {
  const out = await synthesize({ out: tempDir(), n: 16, seed: 3, width: 96, height: 112 });
  let withRegions = 0;
  for (const im of out.images) {
    const file = join(out.mimicRoot, im.path);
    const has = existsSync(regionsPath(file));
    const frontal = im.view !== 'LATERAL' && im.view !== 'LL';
    if (!frontal || !im.shown.some(Boolean)) {
      assert.not.ok(has, `${im.path}: a sidecar without a drawn finding`);
      continue;
    }
    assert.ok(has, `${im.path}: no regions sidecar`);
    withRegions++;
    const grid = (await readRegionsOnGrid(file, 32, 'shortest-crop'))!;
    assert.is(grid.length, 32 * 32);
    for (let k = 0; k < KEYS.length; k++) {
      const on = grid.some((v) => v & (1 << k));
      // Nearest-neighbour sampling may lose a thin region, never invent one.
      if (!im.shown[k]) assert.not.ok(on, `${im.path}: region of a finding not shown`);
    }
    // The image's own geometry (shortest side, centre crop) maps the source-pixel sidecar.
    const meta = await sharp(regionsPath(file)).metadata();
    assert.equal([meta.width, meta.height, meta.channels], [im.width, im.height, 1]);
    const data = await sharp(regionsPath(file)).extractChannel(0).raw().toBuffer();
    assert.equal(
      grid,
      sampleMask(new Uint8Array(data), computeGeometry(im.width, im.height, 32, 'shortest-crop')),
    );
  }
  assert.ok(withRegions > 0);
});

test.run();
