/** The grid's attribution measure on a real cache of synthetic images: anatomy and finding shares. */

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FINDINGS } from '../../ts/common/labels.js';
import { joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { measureModelAttribution, pairedMeanCI, spread } from '../../ts/experiment/attribution-measure.js';
import { openCache } from '../../ts/images/cache.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { ClipModel } from '../../ts/model/clip.js';
import { attributionTable } from '../../ts/report/attribution.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { tempDir } from '../data/helpers.js';
import { MODEL_DIR, requireModel } from '../native/helpers.js';

test('pairedMeanCI: the mean with a percentile interval around it; constant differences give a point', () => {
  const c = pairedMeanCI([0.1, 0.1, 0.1]);
  assert.ok(Math.abs(c.diff - 0.1) < 1e-15);
  assert.ok(Math.abs(c.lo - 0.1) < 1e-15 && Math.abs(c.hi - 0.1) < 1e-15);
  const v = pairedMeanCI([-1, 0, 1, 2, 3], { iterations: 2000, seed: 1 });
  assert.is(v.diff, 1);
  assert.ok(v.lo < 1 && v.hi > 1 && v.lo >= -1 && v.hi <= 3);
  assert.is(pairedMeanCI([Number.NaN]).samples, 0);
  assert.equal(spread([1, 2, 3], 5), [1, 2, 3]);
  assert.equal(spread([0, 1, 2, 3, 4, 5, 6, 7], 4), [1, 3, 5, 7]);
});

test('zero-shot tiny on a synthetic cache: shares in [0,1], diff = masked − original, table', async () => {
  requireModel();
  const syn = await synthesize({ out: tempDir(), n: 40, seed: 21, width: 160, height: 192 });
  const entries = (await buildIndex({ root: syn.mimicRoot })).entries;
  const { rows } = await joinChexmask(
    syn.chexmaskCsv,
    entries.map((e) => e.dicomId),
  );
  const sum = await buildCache({
    entries,
    root: syn.mimicRoot,
    chexmask: rows,
    out: tempDir(),
    shardSize: 16,
  });
  const cache = openCache(sum.dir);
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const d = clip.embedDim;
    const text = FINDINGS.map((_, k) =>
      Float32Array.from({ length: 2 * d }, (_, i) => Math.sin(0.3 * i + k)),
    );
    const pool = cache.entries.map((_, i) => i).filter((i) => cache.entries[i]!.labels.some((v) => v === 1));
    const r = await measureModelAttribution(
      'zeroshot',
      (x, n, k) => clip.attribute(x, n, text[k]!, { method: 'ig', steps: 4 }),
      cache,
      pool,
      { images: 4, imageRoot: syn.mimicRoot },
    );
    assert.is(r.images, 4);
    for (const v of ['original', 'masked'] as const) {
      assert.ok(r.anatomy[v].mean > 0 && r.anatomy[v].mean < 1, `${v} ${r.anatomy[v].mean}`);
      assert.is(r.anatomy[v].n, 4);
    }
    assert.ok(r.anatomyArea > 0.1 && r.anatomyArea < 0.9);
    assert.ok(Math.abs(r.anatomyDiff.diff - (r.anatomy.masked.mean - r.anatomy.original.mean)) < 1e-12);
    assert.ok(r.anatomyDiff.lo <= r.anatomyDiff.diff && r.anatomyDiff.diff <= r.anatomyDiff.hi);
    // Synthetic sidecars give the finding's region for positive images whose finding was drawn.
    assert.ok(r.finding !== null, 'no finding regions found');
    assert.ok(r.findingArea! > 0 && r.findingArea! < 0.5);
    const md = attributionTable([r]);
    assert.match(md, /\| zeroshot \| 4 \|/);
  } finally {
    await clip.dispose();
    cache.close();
  }
});

test.run();
