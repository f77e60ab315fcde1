/**
 * SmoothGrad in chunks of `batch` samples (native/attribution.cc): the same noise draws in the same
 * order, so the same maps as one pass over all samples and as PyTorch; the ceilings on samples and steps
 * (ATTRIBUTION_LIMITS, shared by the API, the run config and `cxrmask explain`); and integer options
 * read in range by the addon. The memory bound itself: attribution-memory.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_EXPLAIN_SAMPLES, MAX_EXPLAIN_STEPS } from '../../ts/cli/explain.js';
import type { NativeError } from '../../ts/common/errors.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { attributionOptions } from '../../ts/model/attribution.js';
import { ClipModel } from '../../ts/model/clip.js';
import { ATTRIBUTION_LIMITS } from '../../ts/model/defaults.js';
import { images, pythonAttributions, relDiff } from '../explain/helpers.js';
import { MODEL_DIR, requireModel } from './helpers.js';

const S = 224;

function prompts(d: number): Float32Array {
  return Float32Array.from({ length: 2 * d }, (_, i) => Math.sin(1.7 * i + 0.4));
}

test('samples and steps are capped at 1024, one limit for the API, the CLI and the run config', () => {
  assert.equal(ATTRIBUTION_LIMITS, { samples: 1024, steps: 1024 });
  assert.is(MAX_EXPLAIN_SAMPLES, ATTRIBUTION_LIMITS.samples);
  assert.is(MAX_EXPLAIN_STEPS, ATTRIBUTION_LIMITS.steps);
  const ok = attributionOptions({ method: 'smoothgrad', samples: 1024, steps: 1024 }, 1, S);
  assert.is(ok.samples, 1024);
  for (const [o, msg] of [
    [{ samples: 1025 }, "attribute option 'samples': samples must be an integer from 1 to 1024, got 1025"],
    [{ samples: 1e300 }, "attribute option 'samples': samples must be an integer from 1 to 1024, got 1e+300"],
    [{ steps: 4096 }, "attribute option 'steps': steps must be an integer from 1 to 1024, got 4096"],
    [
      { batch: 2 ** 31 },
      "attribute option 'batch': batch must be an integer from 1 to 2147483647, got 2147483648",
    ],
  ] as const) {
    assert.throws(
      () => attributionOptions(o, 1, S),
      (e: Error) => e instanceof RangeError && e.message === msg,
      msg,
    );
  }
  // the run config's attribution block: the same ceiling
  assert.throws(
    () => parseConfig({ attribution: { enabled: true, samples: 1025 } }),
    (e: Error) => /attribution\.samples/.test(e.message) && /1024/.test(e.message),
  );
  assert.throws(
    () => parseConfig({ attribution: { enabled: true, steps: 1025 } }),
    (e: Error) => /attribution\.steps/.test(e.message) && /1024/.test(e.message),
  );
});

test('the addon reads samples, steps, batch, seed and textRows as integers in range', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const x = new Float32Array(3 * S * S);
    const text = new Float32Array(clip.embedDim).fill(0.1);
    const raw = (clip as unknown as { live(): { attribute(...a: unknown[]): unknown } }).live();
    const full = {
      method: 'smoothgrad',
      samples: 2,
      sigma: 0.1,
      steps: 2,
      batch: 2,
      seed: 0,
      signed: false,
      bf16: false,
      baseline: null,
      text,
      textRows: 1,
      linearBias: null,
    };
    for (const [key, value, range] of [
      ['samples', 1e300, '[1, 2147483647]'],
      ['samples', Number.NaN, '[1, 2147483647]'],
      ['steps', -1, '[1, 2147483647]'],
      ['batch', 0.5, '[1, 2147483647]'],
      ['seed', -1, '[0, 9007199254740991]'],
      ['textRows', 1e300, '[1, 2147483647]'],
    ] as const) {
      assert.throws(
        () => raw.attribute(x, [1, 3, S, S], undefined, { ...full, [key]: value }),
        (e: Error) =>
          e instanceof RangeError &&
          (e as NativeError).code === 'ERR_INVALID_ARG' &&
          e.message === `${key} must be an integer in ${range}`,
        `${key}: ${value}`,
      );
    }
  } finally {
    await clip.dispose();
  }
});

test('SmoothGrad in chunks of batch samples: the maps of one pass over all samples, and of PyTorch', async () => {
  requireModel();
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const N = 2;
    const x = images(N, S, 5);
    const text = prompts(clip.embedDim);
    const c = { method: 'smoothgrad', samples: 7, sigma: 0.2, seed: 11, signed: true } as const;
    // 7 samples in chunks of 2, 2, 2, 1 per image; then all 7 in one chunk (batch 8 > samples)
    const chunked = await clip.attribute(x, N, text, { ...c, batch: 2 });
    const whole = await clip.attribute(x, N, text, { ...c, batch: 8 });
    // The noise is drawn in the same order either way: only the forward batch size differs, whose
    // float32 rounding is ~1e-7 relative (a wrong draw order gives ~1e-1).
    assert.ok(relDiff(chunked.map, whole.map) <= 1e-5, `map ${relDiff(chunked.map, whole.map)}`);
    assert.ok(relDiff(chunked.signed!, whole.signed!) <= 1e-5);
    // Another seed is another map: the comparison above can fail.
    const other = await clip.attribute(x, N, text, { ...c, batch: 2, seed: 12 });
    assert.ok(relDiff(other.map, whole.map) > 1e-3, 'another seed gave the same map');
    const [ref] = pythonAttributions(x, N, S, [{ ...c, steps: 1, score: { kind: 'clip', rows: 2 } }], {
      text,
    });
    const dm = relDiff(chunked.map, ref!.map);
    const ds = relDiff(chunked.signed!, ref!.signed);
    assert.ok(dm <= 1e-4 && ds <= 1e-4, `vs PyTorch: map ${dm}, signed ${ds}`);
    assert.ok(relDiff(chunked.score, ref!.score) <= 1e-4);
  } finally {
    await clip.dispose();
  }
});

test.run();
