/**
 * Segmenter training and evaluation on a small synthetic cache with the real addon: Dice/HD95 by hand,
 * training reaches a Dice floor per structure, resume continues from the last epoch, eval reports
 * CheXmask's Dice RCA for the same images. (The ≥ 0.90 figure on the demo data set is measured by
 * `cxrmask segmenter train` in docs/segmenter.md; a unit test cannot afford the epochs.)
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { demoSegmenter } from '../../ts/cli/demo-segmenter.js';
import { DataError } from '../../ts/common/errors.js';
import { sha256File } from '../../ts/common/hash.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import type { CacheLike } from '../../ts/experiment/backend.js';
import { realBackend } from '../../ts/experiment/backend-real.js';
import { parseConfig } from '../../ts/experiment/config.js';
import {
  ensurePredictedMasks,
  predictedFeatures,
  predictedPlane,
} from '../../ts/experiment/predicted-masks.js';
import type { Results } from '../../ts/experiment/results.js';
import { type Cache, openCache } from '../../ts/images/cache.js';
import { ClipModel } from '../../ts/model/clip.js';
import { readSegmenterMeta } from '../../ts/model/meta.js';
import { Segmenter } from '../../ts/model/segmenter.js';
import { loadNative } from '../../ts/native.js';
import { evaluateSegmenter } from '../../ts/segment/eval.js';
import { dice, hd95, STRUCTURES } from '../../ts/segment/metrics.js';
import { openSegmenter, resolveSegmenter } from '../../ts/segment/open.js';
import { type SegTrainState, trainSegmenter } from '../../ts/segment/train.js';

const SEG = 'models/seg-tiny';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-seg-'));

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('dice and hd95 by hand', () => {
  const s = 10;
  const a = new Uint8Array(s * s);
  const b = new Uint8Array(s * s);
  // a: columns 2..4 of rows 2..4 (9 px, bit 1); b: the same square shifted right by 3 px.
  for (let y = 2; y <= 4; y++)
    for (let x = 2; x <= 4; x++) {
      a[y * s + x] = 1;
      b[y * s + x + 3] = 1;
    }
  assert.is(dice(a, b, 1), 0);
  assert.is(dice(a, a, 1), 1);
  assert.is(dice(a, b, 4), 1, 'absent from both: 1');
  // Every boundary pixel of a is 3 px from the nearest of b's boundary (row-wise), or more for none.
  assert.is(hd95(a, b, s, 1), 3);
  assert.is(hd95(a, a, s, 1), 0);
  assert.ok(Number.isNaN(hd95(a, new Uint8Array(s * s), s, 1)), 'missing in one: undefined');
  const c = a.slice();
  c[2 * s + 2] = 0; // one pixel less: dice 16/17
  assert.ok(Math.abs(dice(a, c, 1) - 16 / 17) < 1e-12);
});

test('trains on a synthetic cache to a Dice floor per structure, resumes, and evaluates next to Dice RCA', async () => {
  if (!existsSync(join(SEG, 'seg.pt'))) throw new Error(`${SEG} missing: run scripts/setup.sh`);
  const { synthesize } = await import('../../ts/synth/synthesize.js');
  const { prepareData } = await import('../../ts/experiment/backend-real.js');
  const s = await synthesize({ out: join(tmp, 'data'), n: 160, seed: 5, width: 256, height: 256 });
  const cfg = parseConfig({
    runsDir: join(tmp, 'runs'),
    data: { cache: join(tmp, 'cache'), root: s.mimicRoot, chexmask: s.chexmaskCsv },
    model: { dir: 'models/tiny', device: 'cpu' },
  });
  await prepareData(cfg, { log: () => {} });
  const cache = openCache(join(tmp, 'cache'));
  const out = join(tmp, 'seg');
  const fingerprint = { cache: cache.digest, test: 1 };
  const seg = await Segmenter.load(SEG, { device: 'cpu', lr: 1e-2 });
  try {
    const before = await evaluateSegmenter(seg, cache, { batchSize: 8 });
    const common = { cache, segmenter: seg, out, batchSize: 8, seed: 0, fingerprint };
    const first = await trainSegmenter({ ...common, epochs: 2 });
    assert.is(first.epoch, 2);
    assert.ok(existsSync(join(out, 'state-2.pt')) && existsSync(join(out, 'best.pt')));
    // Same folder, more epochs: resumes at epoch 3 from state-2.pt (history kept, step continues).
    const steps = first.step;
    const again = await Segmenter.load(SEG, { device: 'cpu', lr: 1e-2 });
    let st: SegTrainState;
    try {
      st = await trainSegmenter({ ...common, segmenter: again, epochs: 4 });
      assert.is(st.history[0]!.step, first.history[0]!.step);
      assert.is(st.history[2]!.epoch, 3);
      assert.is(st.history[2]!.step, steps + (st.history[1]!.step - st.history[0]!.step));
      assert.ok(!existsSync(join(out, 'state-2.pt')), 'older checkpoints are removed');
      await again.load(join(out, 'best.pt'));
      // validation thresholds the logits itself (to see a NaN one): the same masks as predictMasks'
      const bestEpoch = st.history.find((h) => h.epoch === st.best!.epoch)!;
      const v = await evaluateSegmenter(again, cache, { split: 'validate', batchSize: 8 });
      for (const k of STRUCTURES)
        assert.ok(
          Math.abs(v.dice[k].mean - bestEpoch.val[k]) < 1e-12,
          `${k}: ${v.dice[k].mean} vs ${bestEpoch.val[k]}`,
        );
      const r = await evaluateSegmenter(again, cache, { batchSize: 8 });
      const json = JSON.parse(readFileSync(join(out, 'train.json'), 'utf8')) as SegTrainState;
      assert.is(json.epoch, 4);
      assert.ok(r.images >= 5, `${r.images} test images`);
      for (const k of ['rightLung', 'leftLung', 'heart'] as const) {
        // 4 short epochs on ~100 images: well above the random init, not yet the demo's ≥ 0.90.
        assert.ok(r.dice[k].mean >= 0.5, `${k} Dice ${r.dice[k].mean.toFixed(3)} < 0.5`);
        assert.ok(
          r.dice[k].mean > before.dice[k].mean + 0.2,
          `${k}: ${before.dice[k].mean} → ${r.dice[k].mean}`,
        );
      }
      assert.ok(r.chexmaskDiceRca !== null && r.chexmaskDiceRca.n === r.images);
      assert.ok(r.chexmaskDiceRca.mean > 0.5 && r.chexmaskDiceRca.mean <= 1);

      // The predicted-mask plane of CheXmask's own regions is the cache's plane: same contour drawing.
      for (const i of cache.indicesOf('test').slice(0, 3)) {
        const plane = predictedPlane(cache.regionMasks([i]), cache.size, cache.contour.thickness);
        assert.equal(plane, cache.planes(i).contour, `row ${i}`);
      }

      // Table 2 with predicted masks: zero-shot and LP tested on original, masked, masked-pred.
      const backend = await realBackend();
      const config = parseConfig({
        runsDir: join(tmp, 'runs'),
        data: { cache: join(tmp, 'cache') },
        model: { dir: 'models/tiny', device: 'cpu' },
        segmenter: { dir: SEG, weights: join(out, 'best.pt') },
        seeds: [0],
        linearProbe: { epochs: 2, batchSize: 32 },
        finetune: { enabled: false },
        metrics: { bootstrap: 50 },
      });
      const { runDir } = await runExperiment({ config, backend });
      const res = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
      for (const g of ['zeroshot/per-finding', 'linear-probe/original', 'linear-probe/masked'])
        assert.ok(
          res.evaluation.summary.some((x) => x.group === g && x.testVariant === 'masked-pred'),
          `${g} has no masked-pred cell`,
        );
      const contrasts = res.evaluation.differences.filter((d) => d.group === 'linear-probe/masked');
      assert.equal([...new Set(contrasts.map((d) => d.contrast ?? 'masked − original'))].sort(), [
        'masked − original',
        'masked-pred − masked',
        'masked-pred − original',
      ]);
      for (const d of contrasts) assert.ok(d.lo <= d.diff && d.diff <= d.hi, JSON.stringify(d));
      // The run says which masks it used: the same Dice as evaluating the segmenter on the test split.
      const q = res.segmenter!;
      assert.ok(q, 'results.json has no segmenter');
      assert.is(q.images, r.images);
      for (const k of ['rightLung', 'leftLung', 'heart'] as const) {
        assert.ok(
          Math.abs(q.dice[k].mean - r.dice[k].mean) < 1e-9,
          `${k}: ${q.dice[k].mean} vs ${r.dice[k].mean}`,
        );
        assert.ok(Math.abs(q.hd95[k].median - r.hd95[k].median) < 1e-9, `${k} HD95`);
      }
      assert.is(q.weightsSha256, sha256File(join(out, 'best.pt')).slice(0, 16));
      assert.is(q.training?.epochs, 4);
      assert.equal(q.training?.fingerprint, fingerprint);
      const table = readFileSync(join(runDir, 'table2.md'), 'utf8');
      assert.ok(table.includes(`sha256 ${q.weightsSha256}`), 'table2.md does not name the weights');
      assert.match(table, new RegExp(`right lung ${q.dice.rightLung.mean.toFixed(3)} \\(HD95`));
      assert.ok(readFileSync(join(runDir, 'report.md'), 'utf8').includes(`sha256 ${q.weightsSha256}`));
      assert.match(table, /Test: masked \(predicted\)/);
      assert.match(table, /Δ predicted − original/);
    } finally {
      await again.dispose();
    }
  } finally {
    await seg.dispose();
    cache.close();
  }
});

test('an unreadable image gets no predicted mask and fails alone; the other rows are unchanged', async () => {
  const cache = openCache(join(tmp, 'cache'));
  const rows = cache.indicesOf('test').slice(0, 6);
  const bad = rows[2]!;
  // the same cache, but one row's record cannot be read (as a damaged shard slot would)
  const broken = Object.create(cache) as Cache;
  broken.recordBatch = (idx, v) =>
    idx.includes(bad) ? Promise.reject(new Error(`row ${bad}: short read`)) : cache.recordBatch(idx, v);
  const opts = (dir: string) => ({
    dir: join(tmp, dir),
    rows,
    size: cache.size,
    thickness: 2,
    segmenter: { dir: SEG, weights: 'none (the export)', threshold: 0.5 },
    batchSize: 4,
  });
  const load = () => Segmenter.load(SEG, { device: 'cpu' });
  const good = await ensurePredictedMasks(load, cache as unknown as CacheLike, opts('pm-good'));
  const got = await ensurePredictedMasks(load, broken as unknown as CacheLike, opts('pm-broken'));
  const hw = cache.size * cache.size;
  rows.forEach((r, j) => {
    const a = got.planes.subarray(j * hw, (j + 1) * hw);
    if (r === bad)
      assert.ok(
        a.every((v) => v === 0),
        'the unreadable row got a mask',
      );
    else assert.equal(Array.from(a), Array.from(good.planes.subarray(j * hw, (j + 1) * hw)), `row ${r}`);
  });
  const f = await predictedFeatures(
    () => ClipModel.load('models/tiny', { device: 'cpu' }),
    broken as unknown as CacheLike,
    got,
    {
      dir: join(tmp, 'pf-broken'),
      batchSize: 4,
      bf16: false,
    },
  );
  assert.equal(f.failed, [bad]);
  for (const r of rows) assert.is(Number.isNaN(f.x[r * f.dim]), r === bad, `row ${r} features`);
  cache.close();
});

test("the demo's segmenter folder is what serve/predict/openSegmenter take (train.json names the export)", async () => {
  const data = join(tmp, 'demo');
  const seg = await demoSegmenter(join(tmp, 'cache'), data, { device: 'cpu', log: () => {} });
  assert.equal(resolveSegmenter(join(data, 'segmenter')), { dir: resolve(SEG), weights: seg.weights });
  const opened = await openSegmenter(join(data, 'segmenter'), { device: 'cpu' });
  assert.is(opened.trained, true);
  await opened.dispose();
});

/** The raw addon's segmenter with lr 1e308 (Segmenter.load refuses it), in the class's clothes. */
async function divergingSegmenter(): Promise<Segmenter> {
  const raw = await loadNative().Segmenter.create({
    modelPath: join(SEG, 'seg.pt'),
    device: 'cpu',
    lr: 1e308,
    weightDecay: 0,
    gradClip: 0,
    bf16: false,
  });
  const Ctor = Segmenter as unknown as new (...a: unknown[]) => Segmenter;
  return new Ctor(raw, readSegmenterMeta(SEG), SEG, 0.5);
}

/** Trains into `out` and returns the DataError `non-finite-loss` it must stop with, having saved nothing. */
async function refusedTraining(
  cache: ReturnType<typeof openCache>,
  segmenter: Segmenter,
  out: string,
  sizes: { epochs: number; maxTrain: number; maxValidate?: number },
): Promise<DataError> {
  let err: unknown = null;
  try {
    await trainSegmenter({ cache, segmenter, out, batchSize: 4, seed: 0, fingerprint: {}, ...sizes });
  } catch (e) {
    err = e;
  }
  assert.instance(err, DataError, out);
  assert.is((err as DataError).reason, 'non-finite-loss');
  for (const f of ['best.pt', 'state-1.pt', 'train.json']) assert.not.ok(existsSync(join(out, f)), f);
  return err as DataError;
}

test('lr 1e308 (real addon): the first NaN loss stops training, no best.pt or state of NaN weights', async () => {
  const cache = openCache(join(tmp, 'cache'));
  const seg = await divergingSegmenter();
  const out = join(tmp, 'seg-nan');
  try {
    const err = await refusedTraining(cache, seg, out, { epochs: 2, maxTrain: 12 });
    // step 1's loss is taken before its update: step 2 is the first on NaN weights
    assert.match(
      err.message,
      new RegExp(`^segmenter training ${out}, epoch 1, step 2: the training loss is NaN`),
    );
    assert.match(err.message, /lower the learning rate \(--lr\)/);
  } finally {
    await seg.dispose();
    cache.close();
  }
});

test("lr 1e308, one step per epoch: the epoch's last step made the weights NaN; validation's logits stop it, nothing saved", async () => {
  const cache = openCache(join(tmp, 'cache'));
  const seg = await divergingSegmenter();
  const out = join(tmp, 'seg-nan-last');
  try {
    // the only step's loss is read before its update: finite; the weights after it are not
    const err = await refusedTraining(cache, seg, out, { epochs: 2, maxTrain: 4, maxValidate: 8 });
    assert.match(
      err.message,
      new RegExp(
        `^segmenter training ${out}, epoch 1, validation: the rightLung logit of cache row \\d+ is (NaN|-?Infinity): the weights are not finite`,
      ),
    );
    assert.match(err.message, /lower the learning rate \(--lr\)/);
    assert.is(seg.step, 1);
  } finally {
    await seg.dispose();
    cache.close();
  }
});

test('validation stops on an infinite logit of either sign (+Infinity is above every threshold)', async () => {
  const cache = openCache(join(tmp, 'cache'));
  const real = await Segmenter.load(SEG, { device: 'cpu', lr: 1e-2 });
  try {
    for (const v of [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      // the real segmenter, its logits all `v`: what a diverged output layer gives
      const seg = new Proxy(real, {
        get(t, k) {
          if (k === 'logits')
            return async (_x: unknown, n: number) =>
              new Float32Array(n * STRUCTURES.length * t.size * t.size).fill(v);
          const f = Reflect.get(t, k, t);
          return typeof f === 'function' ? f.bind(t) : f;
        },
      });
      const err = await refusedTraining(cache, seg, join(tmp, `seg-inf-${v}`), {
        epochs: 1,
        maxTrain: 4,
        maxValidate: 8,
      });
      assert.match(err.message, `validation: the rightLung logit of cache row`);
      assert.match(err.message, ` is ${v}: the weights are not finite`);
    }
  } finally {
    await real.dispose();
    cache.close();
  }
});

test.run();
