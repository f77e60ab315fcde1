/**
 * MaskingPredictor on the real stack: the exported tiny model through the addon, sharp
 * preprocessing and CheXmask rows from a synthetic CSV. Checks what a Node service relies on:
 * concurrent calls give the same answers as sequential ones, the masked input really differs, and a
 * fine-tuned checkpoint served by the predictor gives exactly what the Classifier itself predicts.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FINDINGS } from '../../ts/common/labels.js';
import { type ChexmaskRow, joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { preprocess } from '../../ts/images/preprocess.js';
import { preprocessFor } from '../../ts/model/backend-real.js';
import { Classifier } from '../../ts/model/classifier.js';
import { readModelMeta } from '../../ts/model/meta.js';
import { Segmenter } from '../../ts/model/segmenter.js';
import { diagnostics } from '../../ts/native.js';
import { MaskingPredictor, type PreprocessFn } from '../../ts/service/predictor.js';
import { synthesize } from '../../ts/synth/synthesize.js';

const MODEL = 'models/tiny';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-svc-real-'));
let images: { path: string; row: ChexmaskRow }[] = [];

test.before(async () => {
  const out = join(tmp, 'data');
  await synthesize({ out, n: 16, seed: 11, width: 256, height: 288 });
  const { entries } = await buildIndex({ root: join(out, 'mimic') });
  const { rows } = await joinChexmask(
    join(out, 'chexmask', 'MIMIC-CXR-JPG.csv'),
    entries.map((e) => e.dicomId),
  );
  images = entries
    .filter((e) => rows.has(e.dicomId))
    .slice(0, 3)
    .map((e) => ({ path: join(out, 'mimic', e.path), row: rows.get(e.dicomId)! }));
  assert.is(images.length, 3, 'three synthetic frontal images with CheXmask rows');
});

test('zero-shot predictor: concurrent calls equal sequential calls; masked input differs', async () => {
  const p = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu' });
  assert.is(p.kind, 'zeroshot');
  const concurrent = await Promise.all(images.map((im) => p.predict(im.path, im.row)));
  // a batch of three against a batch of one: equal up to float rounding (docs/service.md; a loaded CI
  // machine saw 3e-8, PyTorch does not promise bitwise batch invariance)
  const near = (a: Record<string, number> | null, b: Record<string, number> | null, what: string) => {
    assert.ok(a && b, what);
    for (const f of FINDINGS) assert.ok(Math.abs(a[f]! - b[f]!) < 1e-5, `${what} ${f}: ${a[f]} vs ${b[f]}`);
  };
  for (let i = 0; i < images.length; i++) {
    const again = await p.predict(images[i]!.path, images[i]!.row);
    near(again.original, concurrent[i]!.original, `image ${i} original`);
    near(again.masked, concurrent[i]!.masked, `image ${i} masked`);
    for (const f of FINDINGS) {
      assert.ok(again.original[f] >= 0 && again.original[f] <= 1, f);
    }
  }
  const moved = FINDINGS.some((f) => Math.abs(concurrent[0]!.delta![f]) > 0);
  assert.ok(moved, 'drawing the contours changes the model input, so some score moves');
  const bare = await p.predict(images[0]!.path);
  assert.is(bare.masked, null);
  near(bare.original, concurrent[0]!.original, 'without a row');
  await p.dispose();
  await p.predict(images[0]!.path).then(
    () => assert.unreachable('a disposed predictor must reject'),
    (e: Error) => assert.match(e.message, /disposed/),
  );
});

/**
 * The real preprocess, each call's answer held until `n` calls have theirs, so that they reach the
 * models together; `spoil(image)` true gives that call an image of the wrong size.
 */
function gatedPreprocess(
  n: number,
  spoil: (image: string | Uint8Array) => boolean = () => false,
): PreprocessFn {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let done = 0;
  return async (image, row, o) => {
    const pp = (await preprocess(image, row as Parameters<typeof preprocess>[1], o)) as Awaited<
      ReturnType<PreprocessFn>
    >;
    if (++done === n) release();
    await gate;
    return spoil(image) ? { ...pp, original: pp.original.subarray(1) } : pp;
  };
}

test('concurrent calls share model batches (segmenter and classifier), with the answers each gets alone', async () => {
  const open = async (maxBatch: number, prep?: PreprocessFn) =>
    MaskingPredictor.load({
      modelDir: MODEL,
      device: 'cpu',
      segmenter: await Segmenter.load('models/seg-tiny', { device: 'cpu' }),
      untrained: true,
      maxBatch,
      ...(prep ? { preprocessFn: prep } : {}),
    });
  // three with their CheXmask rows, three without (masks from the segmenter)
  const calls = images.flatMap((im) => [
    [im.path, im.row],
    [im.path, undefined],
  ]) as [string, ChexmaskRow | undefined][];
  const batched = await open(4, gatedPreprocess(6));
  const together = await Promise.all(calls.map(([path, row]) => batched.predict(path, row)));
  const counts = batched.batchCounts;
  await batched.dispose();
  assert.is(counts.calls, 6);
  // the first call finds the models idle; the other five wait for it, then go four and one
  assert.equal(counts, { batches: 3, calls: 6, largest: 4, rerun: 0 });

  const single = await open(1);
  let worst = 0;
  for (const [i, [path, row]] of calls.entries()) {
    const alone = await single.predict(path, row);
    assert.is(together[i]!.maskSource, alone.maskSource);
    assert.is(alone.maskSource, row ? 'chexmask' : 'segmenter');
    for (const f of FINDINGS) {
      worst = Math.max(worst, Math.abs(together[i]!.original[f] - alone.original[f]));
      worst = Math.max(worst, Math.abs(together[i]!.masked![f] - alone.masked![f]));
    }
  }
  assert.equal(single.batchCounts, { batches: 6, calls: 6, largest: 1, rerun: 0 });
  await single.dispose();
  // a batch's rows are computed as one forward: equal to the lone answers up to float rounding
  assert.ok(worst < 1e-5, `batched answers differ from lone ones by ${worst}`);
});

test('a batch mixing one-image and two-image calls answers each; a bad call fails alone', async () => {
  // no segmenter: calls without a row have no masked image (one row), calls with one have two
  const lone = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu', maxBatch: 1 });
  const bad = images[2]!.path;
  const batched = await MaskingPredictor.load({
    modelDir: MODEL,
    device: 'cpu',
    maxBatch: 8,
    preprocessFn: gatedPreprocess(6, (image) => image === bad),
  });
  const calls = [0, 1, 2].flatMap((i) => [
    [images[i]!.path, undefined],
    [images[i]!.path, images[i]!.row],
  ]) as [string, ChexmaskRow | undefined][];
  const settled = await Promise.allSettled(calls.map(([path, row]) => batched.predict(path, row)));
  for (const [i, [path, row]] of calls.entries()) {
    const got = settled[i]!;
    if (path === bad) {
      assert.is(got.status, 'rejected');
      assert.match(
        String((got as PromiseRejectedResult).reason),
        /a preprocessed image has \d+ values|x must hold \d+ values/,
      );
      continue;
    }
    assert.is(got.status, 'fulfilled', String((got as PromiseRejectedResult).reason));
    const want = await lone.predict(path, row);
    const have = (got as PromiseFulfilledResult<Awaited<ReturnType<MaskingPredictor['predict']>>>).value;
    assert.is(have.masked === null, row === undefined);
    for (const f of FINDINGS) {
      assert.ok(Math.abs(have.original[f] - want.original[f]) < 1e-5, `call ${i} original ${f}`);
      if (row) assert.ok(Math.abs(have.masked![f] - want.masked![f]) < 1e-5, `call ${i} masked ${f}`);
    }
  }
  // the first call runs alone; the other five fail together, then run alone. Both calls of the
  // spoiled image are spoiled, so the five hold one whichever call finishes decoding first.
  assert.equal(batched.batchCounts, { batches: 2, calls: 6, largest: 5, rerun: 5 });
  await batched.dispose();
  await lone.dispose();
});

test('bf16: the image tower runs under bf16 autocast where the CPU has it; scores stay near float32', async () => {
  const fp32 = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu' });
  const bf16 = await MaskingPredictor.load({ modelDir: MODEL, device: 'cpu', bf16: true });
  const [a, b] = [
    await fp32.predict(images[0]!.path, images[0]!.row),
    await bf16.predict(images[0]!.path, images[0]!.row),
  ];
  const diffs = FINDINGS.flatMap((f) => [
    Math.abs(a.original[f] - b.original[f]),
    Math.abs(a.masked![f] - b.masked![f]),
  ]);
  const worst = Math.max(...diffs);
  assert.ok(worst < 0.05, `bf16 moved a probability by ${worst}`);
  // without AVX512-BF16/AMX autocast is off and the answers are float32's exactly
  if (diagnostics().cpu.bf16) assert.ok(worst > 0, 'bf16 asked for on a bf16 CPU, yet float32 answers');
  else assert.is(worst, 0);
  await fp32.dispose();
  await bf16.dispose();
});

test('fine-tuned checkpoint served by the predictor equals Classifier.predict', async () => {
  const opts = { preprocess: preprocessFor(readModelMeta(MODEL)) };
  const pairs = await Promise.all(images.map((im) => preprocess(im.path, im.row, opts)));
  const size = pairs[0]!.original.length;
  const x = new Float32Array(size * 2 * pairs.length);
  pairs.forEach((pp, i) => {
    x.set(pp.original, 2 * i * size);
    x.set(pp.masked!, (2 * i + 1) * size);
  });
  const n = 2 * pairs.length;
  const clf = await Classifier.create({ modelDir: MODEL, seed: 3, device: 'cpu' });
  const labels = new Float32Array(n * FINDINGS.length).map((_, j) => (j % 3 === 0 ? 1 : 0));
  for (let s = 0; s < 2; s++) await clf.trainStep(x, n, labels);
  const cell = join(tmp, 'run', 'cells', 'jft-masked-s0');
  await mkdir(cell, { recursive: true });
  const ckpt = join(cell, 'best.ckpt');
  await clf.save(ckpt);
  const expected = await clf.predict(x, n);
  clf.dispose();

  const p = await MaskingPredictor.load({ modelDir: MODEL, checkpoint: ckpt, device: 'cpu' });
  assert.is(p.kind, 'finetune');
  const got = await Promise.all(images.map((im) => p.predict(im.path, im.row)));
  got.forEach((g, i) => {
    FINDINGS.forEach((f, k) => {
      assert.ok(Math.abs(g.original[f] - expected[2 * i * 5 + k]!) < 1e-6, `original ${i} ${f}`);
      assert.ok(Math.abs(g.masked![f] - expected[(2 * i + 1) * 5 + k]!) < 1e-6, `masked ${i} ${f}`);
    });
  });
  await p.dispose();
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
