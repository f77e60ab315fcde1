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
import { diagnostics } from '../../ts/native.js';
import { MaskingPredictor } from '../../ts/service/predictor.js';
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
  for (let i = 0; i < images.length; i++) {
    const again = await p.predict(images[i]!.path, images[i]!.row);
    assert.equal(again.original, concurrent[i]!.original);
    assert.equal(again.masked, concurrent[i]!.masked);
    for (const f of FINDINGS) {
      assert.ok(again.original[f] >= 0 && again.original[f] <= 1, f);
    }
  }
  const moved = FINDINGS.some((f) => Math.abs(concurrent[0]!.delta![f]) > 0);
  assert.ok(moved, 'drawing the contours changes the model input, so some score moves');
  const bare = await p.predict(images[0]!.path);
  assert.is(bare.masked, null);
  assert.equal(bare.original, concurrent[0]!.original);
  await p.dispose();
  await p.predict(images[0]!.path).then(
    () => assert.unreachable('a disposed predictor must reject'),
    (e: Error) => assert.match(e.message, /disposed/),
  );
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
