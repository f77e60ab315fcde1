/** Localisation against the synthetic ground truth: the measures on known maps, then a real model run. */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FINDINGS } from '../../ts/common/labels.js';
import { summarizeLocalisation, syntheticLocalisation } from '../../ts/explain/localisation.js';
import { areaShare, pointingHit, spearman } from '../../ts/explain/measures.js';
import { ClipModel } from '../../ts/model/clip.js';
import { readRegions } from '../../ts/synth/regions.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { tempDir } from '../data/helpers.js';
import { MODEL_DIR, requireModel } from '../native/helpers.js';

const S = 32;

function square(x0: number, y0: number, side: number, bit: number): Uint8Array {
  const r = new Uint8Array(S * S);
  for (let i = y0; i < y0 + side; i++) for (let j = x0; j < x0 + side; j++) r[i * S + j] = bit;
  return r;
}

test('an oracle map scores 1, an even map scores chance, a map elsewhere scores 0', () => {
  const region = square(4, 4, 8, 4); // consolidation (bit 2)
  const oracle = Float32Array.from(region, (v) => (v ? 1 : 0));
  const even = new Float32Array(S * S).fill(1);
  const away = Float32Array.from(square(20, 20, 6, 1));
  const [o] = summarizeLocalisation([{ finding: 2, map: oracle, regions: region }], S);
  assert.is(o!.finding, 'Consolidation');
  assert.is(o!.massInside, 1);
  assert.is(o!.pointingRate, 1);
  assert.is(o!.chance, 64 / (S * S));
  assert.ok(Math.abs(o!.enrichment - (S * S) / 64) < 1e-12);
  const [e] = summarizeLocalisation([{ finding: 2, map: even, regions: region }], S);
  assert.ok(Math.abs(e!.massInside - e!.chance) < 1e-12);
  assert.ok(Math.abs(e!.enrichment - 1) < 1e-12);
  const [a] = summarizeLocalisation([{ finding: 2, map: away, regions: region }], S);
  assert.is(a!.massInside, 0);
  assert.is(a!.pointingRate, 0);
  // Another finding's bit does not count.
  assert.is(summarizeLocalisation([{ finding: 1, map: oracle, regions: region }], S)[0]!.massInside, 0);
});

test('pointing game: the blurred peak, with a tolerance; Spearman on ranks', () => {
  const region = square(10, 10, 4, 1);
  const map = new Float32Array(S * S);
  map[5 * S + 5] = 100; // a lone spike outside: blurred away by the default 5×5 box
  for (let i = 10; i < 14; i++) for (let j = 10; j < 14; j++) map[i * S + j] = 10;
  assert.is(pointingHit(map, region, S), 1);
  assert.is(pointingHit(map, region, S, { smooth: 0 }), 0);
  assert.is(pointingHit(map, region, S, { smooth: 0, tolerance: 5 }), 1);
  assert.is(areaShare(region), 16 / (S * S));
  assert.is(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.is(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  assert.ok(Math.abs(spearman([1, 1, 2, 3], [1, 2, 3, 4]) - 0.9486832980505138) < 1e-12); // ties: mean ranks
  assert.throws(() => spearman([1], [1, 2]), /differ in length/);
});

test('synthetic images: every drawn finding explained once, numbers against chance (tiny zero-shot)', async () => {
  requireModel();
  const syn = await synthesize({ out: tempDir(), n: 14, seed: 8, width: 96, height: 112 });
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const d = clip.embedDim;
    const prompts = FINDINGS.map((_, k) =>
      Float32Array.from({ length: 2 * d }, (_, i) => Math.sin(0.3 * i + k)),
    );
    const paths = syn.images.map((im) => join(syn.mimicRoot, im.path));
    const calls: number[] = [];
    const { samples, summary, size } = await syntheticLocalisation(paths, (x, k) => {
      calls.push(k);
      return clip.attribute(x, 1, prompts[k]!, { method: 'gradient' });
    });
    assert.is(size, 224);
    // One sample per (image, finding drawn in it and still present on the grid).
    let want = 0;
    for (const p of paths) {
      const r = await readRegions(p);
      if (!r) continue;
      for (let k = 0; k < 5; k++) if (r.data.some((v) => v & (1 << k))) want++;
    }
    assert.ok(want > 0);
    assert.is(samples.length, want);
    assert.is(calls.length, want);
    assert.is(
      summary.reduce((a, s) => a + s.images, 0),
      want,
    );
    for (const s of summary) {
      assert.ok(s.massInside >= 0 && s.massInside <= 1, `${s.finding} mass ${s.massInside}`);
      assert.ok(s.chance > 0 && s.chance < 0.5, `${s.finding} chance ${s.chance}`);
      assert.ok(s.pointingRate >= 0 && s.pointingRate <= 1);
    }
  } finally {
    await clip.dispose();
  }
});

test.run();
