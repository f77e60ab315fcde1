/**
 * The bootstrap at the end of a run is tens of seconds of arithmetic at NIH14's test size; a Ctrl-C
 * must be answered during it, not after (signal handlers run only when the event loop gets a turn).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { storedGrid } from '../../bench/stored-grid.js';
import { InterruptedError } from '../../ts/common/errors.js';
import { finishSteps, finishStepsInTurns, type Steps } from '../../ts/common/interrupt.js';
import { mulberry32 } from '../../ts/common/random.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { evaluate } from '../../ts/experiment/evaluate.js';
import { bootstrapDiff, bootstrapDiffSteps } from '../../ts/experiment/metrics.js';

const K = 5;

/** A grid's stored predictions on `nVal` validation and `nTest` test images, 30 % positives. */
function storedRun(nVal: number, nTest: number) {
  const r = mulberry32(3);
  const n = nVal + nTest;
  return storedGrid({
    nVal,
    nTest,
    labels: new Float32Array(n * K).map(() => (r() < 0.3 ? 1 : 0)),
    labelMask: new Float32Array(n * K).fill(1),
    k: K,
    score: (label) => label * 0.3 + r() * 0.7,
    cells: (['original', 'masked'] as const).map((trainVariant) => ({
      setup: 'linear-probe',
      trainVariant,
      seed: 0,
    })),
  });
}

const config = (bootstrap: number) =>
  parseConfig({ data: { cache: 'unused' }, metrics: { bootstrap } }, 'test config');

test('a stop during the bootstrap rejects with InterruptedError at the next replicate, not at the end', async () => {
  const { sd, zs, trained } = storedRun(300, 2000);
  // ~10^5 replicates: minutes of work if nothing stopped it
  const signal = { stop: false };
  let stoppedAt = 0;
  let replicatesLeft = true;
  setTimeout(() => {
    signal.stop = true;
    stoppedAt = performance.now();
  }, 200);
  const err = await evaluate(config(100_000), sd, zs, trained, signal).then(
    () => {
      replicatesLeft = false;
      return null;
    },
    (e: unknown) => e,
  );
  assert.ok(replicatesLeft, 'evaluate finished every replicate: the stop was never seen');
  assert.ok(err instanceof InterruptedError, String(err));
  assert.match((err as Error).message, /bootstrap/);
  assert.ok(stoppedAt > 0, 'the timer ran while the bootstrap was under way');
});

test('a bootstrap run in turns (one at every replicate) gives the numbers of the same work done in one go', async () => {
  const r = mulberry32(5);
  const arrays = () => {
    const n = 400;
    const labels = new Float32Array(n * K).map(() => (r() < 0.3 ? 1 : 0));
    const probs = labels.map((y) => y * 0.3 + r() * 0.7);
    return { probs, labels, mask: null, n, k: K };
  };
  const t = [0.5, 0.5, 0.5, 0.5, 0.5];
  const pairs = [0, 1].map(() => ({
    original: arrays(),
    masked: arrays(),
    thresholdsOriginal: t,
    thresholdsMasked: t,
  }));
  for (const metric of ['macroAUROC', 'meanLabelAccuracy'] as const) {
    const once = bootstrapDiff(pairs, metric, { iterations: 300 });
    const turns = await finishStepsInTurns(
      bootstrapDiffSteps(pairs, metric, { iterations: 300 }),
      { stop: false },
      'x',
      0,
    );
    assert.equal(turns, once, metric);
    assert.is(once.samples, 300);
  }
  // and evaluate, which runs them in turns, completes with every replicate kept
  const { sd, zs, trained } = storedRun(200, 400);
  const e = await evaluate(config(200), sd, zs, trained, { stop: false });
  assert.ok(
    e.differences.length > 0 && e.differences.every((d) => d.samples === 200),
    JSON.stringify(e.differences[0]),
  );
});

test('finishStepsInTurns: every step runs once, in order, the result is the generator value', async () => {
  const seen: number[] = [];
  function* steps(): Steps<string> {
    for (let i = 0; i < 5; i++) {
      seen.push(i);
      yield;
    }
    return 'done';
  }
  assert.is(await finishStepsInTurns(steps(), { stop: false }, 'x', 0), 'done');
  assert.equal(seen, [0, 1, 2, 3, 4]);
  assert.is(finishSteps(steps()), 'done');
  // a stop already set is seen at the first turn
  await finishStepsInTurns(steps(), { stop: true }, 'stopped here', 0).then(
    () => assert.unreachable('a stopped signal must reject'),
    (e: unknown) => assert.ok(e instanceof InterruptedError && e.message === 'stopped here', String(e)),
  );
});

test.run();
