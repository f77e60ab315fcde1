/** Attribution in the addon vs the same computation in PyTorch on the same TorchScript file. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { MODEL_DIR, requireModel } from '../native/helpers.js';
import { images, pythonAttributions, relDiff } from './helpers.js';

const S = 224;
const N = 2;

function prompts(d: number): Float32Array {
  return Float32Array.from({ length: 2 * d }, (_, i) => Math.sin(1.7 * i + 0.4));
}

function sum(a: Float32Array, from = 0, to = a.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i]!;
  return s;
}

test('zero-shot: gradient, SmoothGrad and IG equal PyTorch (relative max diff <= 1e-4)', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const x = images(N, S);
    const text = prompts(clip.embedDim);
    const methods = ['gradient', 'smoothgrad', 'ig'] as const;
    const refs = pythonAttributions(
      x,
      N,
      S,
      methods.map((method) => ({
        method,
        samples: 3,
        sigma: 0.2,
        seed: 11,
        steps: 5,
        score: { kind: 'clip', rows: 2 },
      })),
      { text },
    );
    for (const [k, method] of methods.entries()) {
      const c = { method, samples: 3, sigma: 0.2, seed: 11, steps: 5 };
      // batch 3 cuts the IG path across images and SmoothGrad samples across batches.
      const got = await clip.attribute(x, N, text, { ...c, batch: 3, signed: true });
      const ref = refs[k]!;
      assert.is(got.map.length, N * S * S);
      assert.ok(relDiff(got.score, ref.score) <= 1e-4, `${method} score`);
      const dm = relDiff(got.map, ref.map);
      const ds = relDiff(got.signed!, ref.signed);
      assert.ok(dm <= 1e-4 && ds <= 1e-4, `${method}: map ${dm}, signed ${ds}`);
      if (method === 'ig') assert.ok(relDiff(got.baselineScore!, ref.baselineScore!) <= 1e-4);
    }
  } finally {
    await clip.dispose();
  }
});

test('classifier: IG of one finding logit with an image baseline equals PyTorch', async () => {
  requireModel();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-attr-clf-'));
  const clf = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 3 });
  try {
    const x = images(N, S);
    // Moves the encoder off the export's weights, so Python must read them from the checkpoint.
    await clf.trainStep(
      x,
      N,
      Float32Array.from({ length: N * 5 }, (_, i) => i % 2),
    );
    await clf.save(join(dir, 'w.ckpt'), { weightsOnly: true });
    const baseline = images(1, S, 40).map((v) => 0.1 * v);
    const got = await clf.attribute(x, N, 2, { method: 'ig', steps: 4, baseline, batch: 5, signed: true });
    const [py] = pythonAttributions(
      x,
      N,
      S,
      [
        {
          method: 'ig',
          steps: 4,
          seed: 0,
          samples: 1,
          sigma: 0,
          score: { kind: 'classifier', ckpt: join(dir, 'w.ckpt'), label: 2 },
        },
      ],
      { baseline },
    );
    const ref = py!;
    assert.ok(relDiff(got.score, ref.score) <= 1e-4, 'logit');
    const dm = relDiff(got.map, ref.map);
    assert.ok(dm <= 1e-4, `map ${dm}`);
    assert.ok(relDiff(got.signed!, ref.signed) <= 1e-4);
  } finally {
    await clf.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("linear probe: the linear score over the head's weights equals the LP logit", async () => {
  requireModel();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-attr-lp-'));
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const d = clip.embedDim;
  const lp = await Classifier.create({ inputDim: d, device: 'cpu', seed: 4, lrHead: 0.05 });
  try {
    const x = images(N, S, 3);
    const feats = await clip.encodeImage(x, N);
    await lp.trainStep(
      feats,
      N,
      Float32Array.from({ length: N * 5 }, (_, i) => (i * 3) % 2),
    );
    const head = await lp.headWeights();
    const p = await lp.predict(feats, N);
    for (let k = 0; k < 5; k++) {
      const r = await clip.attributeLinear(x, N, head.weight.subarray(k * d, (k + 1) * d), head.bias[k]!);
      for (let i = 0; i < N; i++) {
        const want = Math.log(p[i * 5 + k]! / (1 - p[i * 5 + k]!));
        assert.ok(
          Math.abs(r.score[i]! - want) < 1e-4,
          `finding ${k} image ${i}: ${r.score[i]} vs LP logit ${want}`,
        );
      }
    }
    // IG's completeness holds for the linear score as for any (32 steps: within 5 %).
    const w = head.weight.subarray(0, d);
    const r = await clip.attributeLinear(x.subarray(0, 3 * S * S), 1, w, head.bias[0]!, {
      method: 'ig',
      steps: 32,
      signed: true,
    });
    const delta = r.score[0]! - r.baselineScore![0]!;
    const gap = Math.abs(sum(r.signed!) - delta);
    assert.ok(gap <= 0.05 * Math.abs(delta) + 1e-3, `completeness gap ${gap} of ${delta}`);
    assert.throws(
      () => clip.attributeLinear(x, N, new Float32Array(3), 0),
      /weight must be a Float32Array of 64 values/,
    );
  } finally {
    await clip.dispose();
    await lp.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IG completeness: sum of attributions = f(x) − f(baseline), error shrinking with steps', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const x = images(1, S, 5);
    const text = prompts(clip.embedDim);
    const gaps: number[] = [];
    for (const steps of [2, 16]) {
      const r = await clip.attribute(x, 1, text, { method: 'ig', steps, signed: true, batch: 16 });
      const delta = r.score[0]! - r.baselineScore![0]!;
      gaps.push(Math.abs(sum(r.signed!) - delta) / Math.max(Math.abs(delta), 1e-6));
    }
    // Midpoint rule: error O(1/steps²) for a smooth path; at 16 steps the relative gap is under 2 %.
    assert.ok(gaps[1]! < 0.02, `completeness gap at 16 steps ${gaps[1]}`);
    assert.ok(gaps[1]! < gaps[0]!, `gap did not shrink: ${gaps.join(' -> ')}`);
  } finally {
    await clip.dispose();
  }
});

test('SmoothGrad is seeded: same seed same map, another seed another map; the map is sum of |signed| only for gradient', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const x = images(1, S, 9);
    const text = prompts(clip.embedDim).subarray(0, clip.embedDim);
    const a = await clip.attribute(x, 1, text, { method: 'smoothgrad', samples: 2, seed: 4 });
    const b = await clip.attribute(x, 1, text, { method: 'smoothgrad', samples: 2, seed: 4 });
    const c = await clip.attribute(x, 1, text, { method: 'smoothgrad', samples: 2, seed: 5 });
    assert.equal(a.map, b.map);
    assert.ok(relDiff(a.map, c.map) > 1e-3);
    const g = await clip.attribute(x, 1, text, { signed: true });
    let d = 0;
    for (let p = 0; p < S * S; p++) {
      const want =
        Math.abs(g.signed![p]!) + Math.abs(g.signed![S * S + p]!) + Math.abs(g.signed![2 * S * S + p]!);
      d = Math.max(d, Math.abs(want - g.map[p]!));
    }
    assert.ok(d < 1e-6, `map vs channel abs-sum ${d}`);
  } finally {
    await clip.dispose();
  }
});

test('bad arguments fail in JS with clear messages', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const head = await Classifier.create({ inputDim: 4, device: 'cpu' });
  const clf = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu' });
  try {
    const x = images(1, S);
    const text = prompts(clip.embedDim);
    assert.throws(
      () => clip.attribute(x, 1, text, { method: 'lime' as 'ig' }),
      /method must be one of gradient, smoothgrad, ig/,
    );
    assert.throws(
      () => clip.attribute(x, 1, text, { steps: 0 }),
      /steps must be an integer from 1 to 1024, got 0/,
    );
    assert.throws(() => clip.attribute(x, 1, text, { sigma: -1 }), /sigma must be a finite number >= 0/);
    assert.throws(
      () => clip.attribute(x, 1, text, { baseline: new Float32Array(5) }),
      /baseline must hold 150528 values/,
    );
    assert.throws(
      () => clip.attribute(x, 1, text, { stepz: 3 } as object),
      /unknown attribute option 'stepz'/,
    );
    assert.throws(
      () => clip.attribute(x, 1, new Float32Array(3)),
      /text must be a Float32Array of 64 or 128 values/,
    );
    assert.throws(() => clf.attribute(x, 1, 5), /label must be an integer in \[0,5\)/);
    assert.throws(() => head.attribute(new Float32Array(4), 1, 0), /head-only/);
  } finally {
    await clip.dispose();
    await head.dispose();
    await clf.dispose();
  }
});

test.run();
