/**
 * End to end with the real layers: synthetic data → index → cache → the whole grid with the exported
 * `tiny` model (LibTorch addon) → results.json with every cell; resume equivalence; fine-tuning
 * beats chance. Skipped (with a message) when the addon or models/tiny is not built.
 */

import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InterruptedError } from '../../ts/common/errors.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import type { Backend } from '../../ts/experiment/backend.js';
import { parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';

const MODEL = 'models/tiny';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-e2e-'));
let backend: Backend | null = null;
let skip = '';

async function setup(): Promise<void> {
  if (!existsSync(join(MODEL, 'model.json'))) {
    skip = `${MODEL} not exported (run scripts/setup.sh)`;
    return;
  }
  try {
    const { realBackend, prepareData } = await import('../../ts/experiment/backend-real.js');
    backend = await realBackend();
    backend.setThreads?.(2);
    const { synthesize } = await import('../../ts/synth/synthesize.js');
    await synthesize({ out: join(tmp, 'data'), n: 1000, seed: 3, width: 256, height: 256 });
    // One unreadable and one missing training image: the run must skip them (counted), not die.
    const { buildIndex } = await import('../../ts/data/datasets/mimic.js');
    const { entries } = await buildIndex({ root: join(tmp, 'data', 'mimic') });
    const train = entries.filter((e) => e.split === 'train');
    writeFileSync(join(tmp, 'data', 'mimic', train[0]!.path), Buffer.from('not a jpeg'));
    unlinkSync(join(tmp, 'data', 'mimic', train[1]!.path));
    await prepareData(cfg({}), { log: () => {} });
  } catch (e) {
    skip = `real backend unavailable: ${(e as Error).message.split('\n')[0]}`;
    backend = null;
  }
}

function cfg(over: Record<string, unknown>) {
  return parseConfig({
    runsDir: join(tmp, 'runs'),
    data: {
      cache: join(tmp, 'cache'),
      root: join(tmp, 'data', 'mimic'),
      chexmask: join(tmp, 'data', 'chexmask', 'MIMIC-CXR-JPG.csv'),
    },
    model: { dir: MODEL, device: 'cpu' },
    seeds: [0, 1, 2],
    linearProbe: { epochs: 5, batchSize: 32, lr: 3e-3 },
    finetune: { epochs: 1, batchSize: 16, lrEncoder: 1e-3, lrHead: 1e-2, maxTrainImages: 96 },
    metrics: { bootstrap: 50 },
    ...over,
  });
}

test.before(setup);

test('grid end to end: results.json has every cell', async () => {
  if (!backend) throw new Error(`e2e needs the real backend (npm test runs setup first): ${skip}`);
  const { runDir } = await runExperiment({ config: cfg({ name: 'e2e' }), backend });
  const r = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
  assert.is(r.evaluation.groups.length, 6);
  assert.is(r.evaluation.cells.length, 4 + 2 * 2 * 3 * 2);
  for (const s of r.evaluation.summary) {
    assert.ok(s.metrics.meanLabelAccuracy.mean !== null, `${s.group}/${s.testVariant}`);
    assert.is(s.perLabel.length, 5);
  }
  for (const f of ['table2.md', 'per_disease.md', 'report.html', 'plots/overlay_example.png'])
    assert.ok(existsSync(join(runDir, f)), f);
  assert.ok(r.run.versions['torch'], 'torch version recorded');
  assert.ok(r.data.counts.test > 0);
  const skipped = r.data.skippedImages.cache ?? {};
  assert.is(skipped['image-corrupt'], 1, 'the corrupt JPEG is counted');
  // the missing one never reaches the cache: the index drops it (`image-missing`, tested in test/data)
  assert.is(skipped['image-missing'], undefined);
});

test('interrupted fine-tuning resumes to the same result', async () => {
  if (!backend) throw new Error(`e2e needs the real backend (npm test runs setup first): ${skip}`);
  const config = cfg({
    name: 'resume',
    seeds: [0],
    trainVariants: ['masked'],
    zeroshot: { enabled: false },
    linearProbe: { enabled: false },
    finetune: { epochs: 2, batchSize: 16, lrEncoder: 5e-4, lrHead: 3e-3, maxTrainImages: 48 },
  });
  const full = await runExperiment({ config, backend });
  // interrupt in epoch 2 (3 steps per epoch)
  let steps = 0;
  const signal = { stop: false };
  const counting: Backend = {
    ...backend,
    createClassifier: async (o) => {
      const c = await backend!.createClassifier(o);
      const step = c.trainStep.bind(c);
      c.trainStep = async (...a) => {
        if (++steps === 5) signal.stop = true;
        return step(...a);
      };
      return c;
    },
  };
  let dir = '';
  try {
    await runExperiment({ config, backend: counting, signal, onRunDir: (d) => (dir = d) });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, InterruptedError);
  }
  assert.is(
    JSON.parse(readFileSync(join(dir, 'cells', 'jft-masked-s0', 'state.json'), 'utf8')).epochsDone,
    1,
  );
  const resumed = await runExperiment({ config, backend, resume: dir });
  const a = full.results.evaluation.cells.map((c) => c.metrics.macroAUROC);
  const b = resumed.results.evaluation.cells.map((c) => c.metrics.macroAUROC);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs((a[i] ?? 0) - (b[i] ?? 0)) < 1e-4, `${a[i]} vs ${b[i]}`);
  const pa = JSON.parse(readFileSync(join(full.runDir, 'cells', 'jft-masked-s0', 'result.json'), 'utf8'));
  const pb = JSON.parse(readFileSync(join(dir, 'cells', 'jft-masked-s0', 'result.json'), 'utf8'));
  const x = pa.predictions.test.original.probs as number[];
  const y = pb.predictions.test.original.probs as number[];
  const maxDiff = Math.max(...x.map((v, i) => Math.abs(v - y[i]!)));
  assert.ok(maxDiff < 1e-4, `max prob diff ${maxDiff}`);
});

test('fine-tuning clearly beats chance on the synthetic data', async () => {
  if (!backend) throw new Error(`e2e needs the real backend (npm test runs setup first): ${skip}`);
  const config = cfg({
    name: 'learn',
    seeds: [0],
    trainVariants: ['original'],
    zeroshot: { enabled: false },
    linearProbe: { enabled: false },
    finetune: { epochs: 5, batchSize: 16, lrEncoder: 1e-3, lrHead: 1e-2, maxTrainImages: 400 },
    metrics: { bootstrap: 500 },
  });
  const { results } = await runExperiment({ config, backend });
  const s = results.evaluation.summary.find(
    (x) => x.group === 'finetune/original' && x.testVariant === 'original',
  )!;
  console.log(
    `  JFT macro AUROC ${s.metrics.macroAUROC.mean.toFixed(3)}; per finding ${s.perLabel.map((p) => p.auroc.mean.toFixed(2)).join(' ')}; n test ${results.data.counts.test}; val ${results.training[0]?.history?.map((h) => h.val.macroAUROC.toFixed(2)).join(' ')}`,
  );
  assert.ok(s.metrics.macroAUROC.mean > 0.6, `macro AUROC ${s.metrics.macroAUROC.mean}`);
  // paired bootstrap against a constant scorer (AUROC 0.5): the 95 % CI of (model − chance) excludes 0
  const { labelArrays } = await import('../../ts/experiment/evaluate.js');
  const { bootstrapDiff } = await import('../../ts/experiment/metrics.js');
  const { splitData } = await import('../../ts/experiment/cells.js');
  const sd = await splitData(await backend.openCache(config.data.cache));
  const cell = JSON.parse(
    readFileSync(join(results.run.dir, 'cells', 'jft-original-s0', 'result.json'), 'utf8'),
  );
  const model = labelArrays(cell.predictions.test.original, sd.test, sd);
  const chance = { ...model, probs: new Float32Array(model.probs.length).fill(0.5) };
  const ci = bootstrapDiff(
    [
      {
        original: chance,
        masked: model,
        thresholdsOriginal: [0.5, 0.5, 0.5, 0.5, 0.5],
        thresholdsMasked: [0.5, 0.5, 0.5, 0.5, 0.5],
      },
    ],
    'macroAUROC',
    { iterations: 500 },
  );
  console.log(`  macro AUROC − 0.5 = ${ci.diff.toFixed(3)} [${ci.lo.toFixed(3)}, ${ci.hi.toFixed(3)}]`);
  assert.ok(ci.lo > 0, `CI ${ci.lo}..${ci.hi} includes chance`);
});

test.after(() => {
  if (!process.env['CXRMASK_KEEP_TMP']) rmSync(tmp, { recursive: true, force: true });
  else console.log(`kept ${tmp}: ${readdirSync(tmp).join(', ')}`);
});
test.run();
