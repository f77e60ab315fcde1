/**
 * Sanity checks for attribution maps (Adebayo et al., 2018): a map that explains the model must change
 * when the model's weights are randomised and when it was trained on permuted labels. Tiny model, a toy
 * localisation task (test/explain/sanity-data.ts) whose decisive pixels are known.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mulberry32 } from '../../ts/common/random.js';
import { spearman } from '../../ts/explain/measures.js';
import type { AttributionMethod } from '../../ts/model/attribution.js';
import { Classifier } from '../../ts/model/classifier.js';
import { MODEL_DIR, ROOT, requireModel } from '../native/helpers.js';
import { python } from './helpers.js';
import { type SquareSet, squares } from './sanity-data.js';

const S = 224;
const N = 32;
const B = 8;
const STEPS = 24;
/**
 * Bounds on the median per-image Spearman correlation between the trained model's map and a sanity
 * model's map. The same model's maps computed twice (another SmoothGrad seed) correlate at > 0.9
 * (asserted), maps of unrelated models near 0. Weight randomisation: a method passes when its maps keep
 * less than half their rank order (Adebayo et al. report 0-0.4 for the methods that pass). Label
 * permutation: here both models start from the same weights and train 24 steps (Adebayo et al. train to
 * convergence), so part of the map is the shared initialisation's; the bound is 0.6, and only IG is
 * held to it. Measured on this test (CPU, tiny): gradient 0.67 / 0.83, SmoothGrad 0.33 / 0.85,
 * IG 0.22 / 0.51 (randomised / permuted): vanilla gradient maps of this ViT mostly follow the input
 * (LayerNorm scales each patch's gradient by 1/σ of the patch), whatever the weights — the failure
 * Adebayo et al. warn about, asserted below so that docs/attribution.md stays true.
 */
const RANDOMISED_BOUND = 0.5;
const PERMUTED_BOUND = 0.6;

async function fit(set: SquareSet, seed: number): Promise<Classifier> {
  const c = await Classifier.create({
    modelDir: MODEL_DIR,
    device: 'cpu',
    seed,
    lrEncoder: 5e-4,
    lrHead: 1e-2,
    weightDecay: 0,
  });
  const px = 3 * S * S;
  for (let k = 0; k < STEPS; k++) {
    const a = (k * B) % N;
    await c.trainStep(
      set.x.subarray(a * px, (a + B) * px),
      B,
      set.y.subarray(a * 5, (a + B) * 5),
      set.mask.subarray(a * 5, (a + B) * 5),
    );
  }
  return c;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Per-image Spearman correlations between two maps [n,S,S]. */
function rhos(a: Float32Array, b: Float32Array, n: number): number[] {
  const hw = S * S;
  return Array.from({ length: n }, (_, i) =>
    spearman(a.subarray(i * hw, (i + 1) * hw), b.subarray(i * hw, (i + 1) * hw)),
  );
}

test('sanity: IG and SmoothGrad maps change with randomised weights, IG with permuted labels; vanilla gradient barely does', async () => {
  requireModel();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-sanity-'));
  const train = squares(N, S, 1);
  // Permuted labels: the same images, column 0 shuffled (a seeded Fisher-Yates).
  const permuted: SquareSet = { ...train, y: train.y.slice() };
  const rng = mulberry32(5);
  const order = Array.from({ length: N }, (_, i) => i);
  for (let i = N - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  for (let i = 0; i < N; i++) permuted.y[i * 5] = train.y[order[i]! * 5]!;
  const testSet = squares(4, S, 99);
  const trained = await fit(train, 1);
  const shuffledModel = await fit(permuted, 1);
  const randomised = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 1 });
  try {
    // The trained model learned the task (else the check would compare two random models).
    const p = await trained.predict(testSet.x, 4);
    const pos = (p[0]! + p[10]!) / 2;
    const neg = (p[5]! + p[15]!) / 2;
    assert.ok(pos - neg > 0.2, `trained model does not separate the test images: +${pos} vs -${neg}`);
    // Full randomisation of every trained tensor (Python, on the saved checkpoint).
    await trained.save(join(dir, 'trained.ckpt'), { weightsOnly: true });
    const py = spawnSync(
      python(),
      [
        join(ROOT, 'test', 'explain', 'fixtures', 'randomize_ckpt.py'),
        join(dir, 'trained.ckpt'),
        join(dir, 'random.ckpt'),
        '7',
      ],
      { encoding: 'utf8' },
    );
    assert.is(py.status, 0, py.stderr);
    await randomised.load(join(dir, 'random.ckpt'));

    const found: string[] = [];
    const res = new Map<string, number[]>();
    for (const method of ['gradient', 'smoothgrad', 'ig'] as AttributionMethod[]) {
      const o = { method, samples: 4, steps: 8, batch: 16, seed: 1 };
      const mt = (await trained.attribute(testSet.x, 4, 0, o)).map;
      const mr = (await randomised.attribute(testSet.x, 4, 0, o)).map;
      const mp = (await shuffledModel.attribute(testSet.x, 4, 0, o)).map;
      const r = median(rhos(mt, mr, 4));
      const q = median(rhos(mt, mp, 4));
      found.push(
        `${method}: rho(trained, randomised) ${r.toFixed(3)}, rho(trained, permuted) ${q.toFixed(3)}`,
      );
      res.set(method, [r, q]);
    }
    // The measure can say "alike": the same model's SmoothGrad with two noise seeds.
    const a = (await trained.attribute(testSet.x, 4, 0, { method: 'smoothgrad', samples: 4, seed: 1 })).map;
    const b = (await trained.attribute(testSet.x, 4, 0, { method: 'smoothgrad', samples: 4, seed: 2 })).map;
    const same = median(rhos(a, b, 4));
    assert.ok(same > 0.9, `the same model's maps correlate at only ${same}`);
    console.log(`  sanity: ${found.join('; ')}; same model, other seed ${same.toFixed(3)}`);
    for (const method of ['smoothgrad', 'ig']) {
      const r = res.get(method)![0]!;
      assert.ok(r < RANDOMISED_BOUND, `${method}: maps survive weight randomisation (median rho ${r})`);
    }
    const q = res.get('ig')![1]!;
    assert.ok(q < PERMUTED_BOUND, `ig: maps survive label permutation (median rho ${q})`);
    // The known failure: vanilla gradient maps change less under randomisation than IG's.
    assert.ok(
      res.get('gradient')![0]! > res.get('ig')![0]!,
      'gradient maps are no longer the least sensitive',
    );
  } finally {
    await trained.dispose();
    await shuffledModel.dispose();
    await randomised.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
