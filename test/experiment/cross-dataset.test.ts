/**
 * Train on one dataset, test on another (config.test.datasets): a real tiny run trained on synthetic
 * MIMIC-layout data and tested on a synthetic NIH ChestX-ray14 layout, with the real addon and
 * models/tiny. Table 2 per test dataset in results.json and table2-<name>.md, thresholds from the
 * training dataset's validation split, a finished evaluation skipped on resume, a lost prediction
 * file redone alone, re-evaluation re-scoring the stored predictions.
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, DataError } from '../../ts/common/errors.js';
import { toJson } from '../../ts/common/io.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import type { Backend } from '../../ts/experiment/backend.js';
import { cellConfig } from '../../ts/experiment/cell-config.js';
import { parseConfig } from '../../ts/experiment/config.js';
import type {
  CrossData,
  CrossDatasetResult,
  CrossPredictions,
  TestDatasetSpec,
} from '../../ts/experiment/cross-dataset.js';
import type { GridEvent } from '../../ts/experiment/grid.js';
import { chooseThresholds } from '../../ts/experiment/metrics.js';
import type { Results } from '../../ts/experiment/results.js';
import { reevaluate } from '../../ts/report/reevaluate.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { countLoads, fakeBackend, loadsDuringPhase } from './fake-backend.js';

const MODEL = 'models/tiny';

const base = { data: { cache: 'c' } };
const nih = { dataset: 'nih14', root: 'nih', chexmask: 'ChestX-Ray8.csv' };

test('test.datasets: defaults to none; names, root and chexmask are required and checked', async () => {
  const c = parseConfig(base);
  assert.equal(c.test.datasets, []);
  const t = parseConfig({ ...base, test: { datasets: [nih] } }).test.datasets[0]!;
  assert.equal([t.dataset, t.name, t.cache], ['nih14', null, null]);
  assert.throws(
    () => parseConfig({ ...base, test: { datasets: [{ dataset: 'nih14', chexmask: 'x.csv' }] } }),
    /test\.datasets\.0\.root: required/,
  );
  assert.throws(
    () => parseConfig({ ...base, test: { datasets: [{ dataset: 'nih14', root: 'r' }] } }),
    /test\.datasets\.0\.chexmask: required/,
  );
  assert.throws(
    () => parseConfig({ ...base, test: { datasets: [{ ...nih, dataset: 'nih' }] } }),
    /test\.datasets\.0\.dataset/,
  );
  assert.throws(
    () => parseConfig({ ...base, test: { datasets: [nih, nih] } }),
    /test\.datasets\.1\.name:.*twice/,
  );
  const { testDatasets } = await import('../../ts/experiment/cross-dataset.js');
  const specs = testDatasets(parseConfig({ data: { cache: 'data/cache/' }, test: { datasets: [nih] } }));
  assert.equal(specs, [
    {
      name: 'nih14',
      dataset: 'nih14',
      root: 'nih',
      chexmask: 'ChestX-Ray8.csv',
      cache: 'data/cache-test-nih14',
    },
  ]);
  // two copies of one dataset are fine under their own names
  parseConfig({ ...base, test: { datasets: [nih, { ...nih, name: 'nih-site2', root: 'nih2' }] } });
});

test('test.datasets: the training dataset is refused unless allowed explicitly', () => {
  const same = { dataset: 'mimic', root: 'm2', chexmask: 'MIMIC-CXR-JPG.csv' };
  assert.throws(
    () => parseConfig({ ...base, test: { datasets: [same] } }),
    /test\.datasets\.0\.dataset: "mimic" is the training dataset.*allowSameDataset/,
  );
  const ok = parseConfig({ ...base, test: { datasets: [same], allowSameDataset: true } });
  assert.is(ok.test.datasets[0]!.dataset, 'mimic');
  assert.throws(
    () => parseConfig({ data: { cache: 'c', dataset: 'nih14' }, test: { datasets: [nih] } }),
    /"nih14" is the training dataset/,
  );
});

test('test.datasets is not part of any cell fingerprint: adding one on resume keeps every cell', () => {
  const a = parseConfig(base);
  const b = parseConfig({ ...base, test: { datasets: [nih] } });
  for (const id of ['zeroshot', 'lp-original-s0', 'jft-masked-s1'])
    assert.equal(cellConfig(b, id), cellConfig(a, id), id);
});

test('a missing test dataset root fails when the run starts, before any training, naming the field', async () => {
  const tmpRuns = mkdtempSync(join(tmpdir(), 'cxrmask-xdata-paths-'));
  const never = () => {
    throw new Error('the data must not be opened');
  };
  const config = parseConfig({
    runsDir: tmpRuns,
    data: { cache: join(tmpRuns, 'cache') },
    test: {
      datasets: [{ dataset: 'nih14', root: join(tmpRuns, 'no-such-root'), chexmask: join(tmpRuns, 'x.csv') }],
    },
  });
  const stub = { name: 'stub', openCache: never, resolveDevice: () => 'cpu', versions: () => ({}) };
  let err: Error | null = null;
  await runExperiment({ config, backend: stub as unknown as Backend }).catch((e: Error) => (err = e));
  assert.instance(err, ConfigError);
  assert.match(String(err), /test\.datasets\.0\.root: .*no-such-root does not exist/);
  assert.match(String(err), /test\.datasets\.0\.chexmask: .*x\.csv does not exist/);
});

/** A fresh runs folder with a 12-image NIH layout (and its CheXmask CSV) in it. */
async function smallNih(prefix: string) {
  const tmpRuns = mkdtempSync(join(tmpdir(), prefix));
  const s = await synthesize({
    out: join(tmpRuns, 'data'),
    dataset: 'nih14',
    n: 12,
    seed: 3,
    width: 64,
    height: 64,
  });
  return { tmpRuns, s };
}

test('a test dataset root one folder off (it exists, but holds no NIH table) fails before any training, naming it', async () => {
  const { tmpRuns, s } = await smallNih('cxrmask-xdata-root-');
  const never = () => {
    throw new Error('the data must not be opened');
  };
  const stub = { name: 'stub', openCache: never, resolveDevice: () => 'cpu', versions: () => ({}) };
  const run = async (root: string) => {
    const config = parseConfig({
      runsDir: tmpRuns,
      data: { cache: join(tmpRuns, 'cache') },
      test: { datasets: [{ dataset: 'nih14', root, chexmask: s.chexmaskCsv }] },
    });
    return runExperiment({ config, backend: stub as unknown as Backend }).then(
      () => null,
      (e: Error) => e,
    );
  };
  // the parent of the NIH layout: it exists, so the old path check let the grid train first
  const off = await run(join(tmpRuns, 'data'));
  assert.instance(off, ConfigError);
  assert.match(String(off), /checked before training/);
  assert.match(
    String(off),
    /test\.datasets\.0\.root: .*data is not a nih14 root as the index reads it: .*Data_Entry_2017/,
  );
  // the right root passes the check: the run goes on to open its own data (the stub refuses)
  const right = await run(s.mimicRoot);
  assert.match(String(right), /the data must not be opened/);
});

test('a test dataset that fails after training says that the trained cells are kept and how to go on (exit 2 kept)', async () => {
  const { tmpRuns, s } = await smallNih('cxrmask-xdata-late-');
  const config = parseConfig({
    runsDir: tmpRuns,
    data: { cache: join(tmpRuns, 'cache') },
    seeds: [0],
    zeroshot: { enabled: false },
    finetune: { enabled: false },
    linearProbe: { epochs: 1, batchSize: 16 },
    metrics: { bootstrap: 10 },
    test: { datasets: [{ dataset: 'nih14', root: s.mimicRoot, chexmask: s.chexmaskCsv }] },
  });
  let runDir = '';
  const err = await runExperiment({
    config,
    backend: fakeBackend(),
    onRunDir: (d) => {
      runDir = d;
    },
    prepareTestData: async () => {
      throw new DataError('bad-csv', 'not a CheXmask CSV of ChestX-Ray8', { file: s.chexmaskCsv });
    },
  }).then(
    () => null,
    (e: Error) => e,
  );
  assert.instance(err, DataError);
  assert.is((err as DataError).reason, 'bad-csv');
  assert.is((err as DataError).where.file, s.chexmaskCsv, 'the file it names is kept');
  assert.match(
    String(err),
    new RegExp(
      `not a CheXmask CSV of ChestX-Ray8\\. The trained cells are kept in ${runDir}: fix test\\.datasets in its config\\.json and continue with \`cxrmask run --resume ${runDir}\``,
    ),
  );
  assert.ok(existsSync(join(runDir, 'cells', 'lp-original-s0', 'result.json')), 'the cells trained');
});

test('a test dataset named "." or ".." is refused: its folder would be the run folder or above it', () => {
  for (const name of ['.', '..'])
    assert.throws(
      () => parseConfig({ ...base, test: { datasets: [{ ...nih, name }] } }),
      /test\.datasets\.0\.name: not "\." or "\.\."/,
    );
});

let backend: Backend | null = null;
let skip = '';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-xdata-'));
let mimic: { root: string; chexmask: string };
let nihData: { root: string; chexmask: string; test: number };

async function setup(): Promise<void> {
  if (!existsSync(join(MODEL, 'model.json'))) {
    skip = `${MODEL} not exported (run scripts/setup.sh)`;
    return;
  }
  const { realBackend } = await import('../../ts/experiment/backend-real.js');
  backend = await realBackend();
  backend.setThreads?.(2);
  const { synthesize } = await import('../../ts/synth/synthesize.js');
  const m = await synthesize({ out: join(tmp, 'train'), n: 150, seed: 3, width: 96, height: 96 });
  mimic = { root: m.mimicRoot, chexmask: m.chexmaskCsv };
  const n = await synthesize({
    out: join(tmp, 'nih'),
    dataset: 'nih14',
    n: 240,
    seed: 4,
    width: 96,
    height: 96,
  });
  nihData = { root: n.mimicRoot, chexmask: n.chexmaskCsv, test: n.perSplit.test };
}

const readPreds = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as CrossPredictions;

function cfg() {
  return parseConfig({
    runsDir: join(tmp, 'runs'),
    data: { cache: join(tmp, 'cache'), root: mimic.root, chexmask: mimic.chexmask },
    model: { dir: MODEL, device: 'cpu' },
    seeds: [0],
    linearProbe: { epochs: 1, batchSize: 16 },
    finetune: { epochs: 1, batchSize: 8, maxTrainImages: 16 },
    metrics: { bootstrap: 20 },
    test: { datasets: [{ dataset: 'nih14', root: nihData.root, chexmask: nihData.chexmask }] },
  });
}

test.before(setup);

test('train on MIMIC, test on NIH: Table 2 per test dataset, source-validation thresholds, resume', async () => {
  if (!backend) {
    console.log(`SKIP ${skip}`);
    return;
  }
  const { prepareData, prepareTestData } = await import('../../ts/experiment/backend-real.js');
  const config = cfg();
  const extra = await prepareData(config, { log: () => {} });
  let prepared = 0;
  const prepareTest = (t: TestDatasetSpec) => {
    prepared++;
    return prepareTestData(config, t, { log: () => {} });
  };
  const cacheDir = (extra['cache'] as { dir: string }).dir;
  const { backend: counted, counts } = countLoads(backend);
  const testing = loadsDuringPhase(counts, 'test datasets');
  const first = await runExperiment({
    config,
    backend: counted,
    extra,
    cacheDir,
    prepareTestData: prepareTest,
    onEvent: testing.onEvent,
  });
  // testing on NIH: one tower for its features, one for zero-shot; each cell's best.ckpt read for its
  // kind, then made and loaded once; the linear probes score the features without a tower of their own
  assert.equal(testing.loads(), { clip: 2, headers: 4, made: 4, load: 4 });
  assert.is(counts.liveClips, 0);
  const { runDir, results } = first;
  assert.is(prepared, 1);

  const x = results.testDatasets?.['nih14'] as CrossDatasetResult;
  assert.ok(x, 'results.testDatasets.nih14');
  assert.is(x.dataset, 'nih14');
  // the test cache holds NIH's test split alone (official test_list.txt), every image of it with a mask row
  assert.ok(x.counts.test > 0 && x.counts.test <= nihData.test, `${x.counts.test} of ${nihData.test}`);
  assert.is(x.fingerprint.entries, x.counts.test);
  assert.is.not(x.fingerprint.entriesDigest, results.data.fingerprint.entriesDigest);
  // the same rows as the run's own Table 2: zero-shot (2 protocols), LP and JFT on original and masked
  assert.equal(
    x.evaluation.groups.map((g) => g.key),
    results.evaluation.groups.map((g) => g.key),
  );
  assert.is(x.evaluation.groups.length, 6);
  assert.is(x.evaluation.cells.length, 12);
  assert.ok(x.seconds > 0 && results.run.timings.cells['test:nih14'] === x.seconds);
  assert.equal(x.models, ['zeroshot', 'lp-original-s0', 'lp-masked-s0', 'jft-original-s0', 'jft-masked-s0']);
  for (const s of x.evaluation.summary) {
    const where = `${s.group}/${s.testVariant}`;
    const acc = s.metrics.meanLabelAccuracy.mean;
    if (s.group !== 'zeroshot/softmax-5way') assert.ok(acc >= 0 && acc <= 1, `${where} accuracy ${acc}`);
    const auc = s.metrics.macroAUROC.mean;
    assert.ok(Number.isNaN(auc) || (auc >= 0 && auc <= 1), `${where} AUROC ${auc}`);
    assert.is(s.perLabel.length, 5);
  }
  for (const p of Object.values(x.testPrevalence)) assert.ok(Number.isNaN(p) || (p >= 0 && p <= 1));
  assert.ok(x.allNegativeMeanLabelAccuracy > 0 && x.allNegativeMeanLabelAccuracy <= 1);

  // thresholds: the training dataset's validation split picks them (the run's own Table 2 uses the same
  // ones), while the test metrics are NIH's
  assert.is(x.thresholdsFrom, 'training dataset validation split');
  for (const c of x.evaluation.cells) {
    const own = results.evaluation.cells.find(
      (o) => o.group === c.group && o.seed === c.seed && o.testVariant === c.testVariant,
    )!;
    assert.equal(c.thresholds, own.thresholds, `${c.group}/${c.testVariant}`);
    assert.equal(c.operatingThresholds, own.operatingThresholds);
  }
  const aucs = (cells: typeof x.evaluation.cells) => cells.map((c) => c.metrics.macroAUROC).join();
  assert.is.not(aucs(x.evaluation.cells), aucs(results.evaluation.cells));
  assert.ok(x.evaluation.cells.some((c) => Number.isFinite(c.metrics.macroAUROC)));
  // thresholds NIH's own test labels would pick are other ones: the check above can tell them apart
  const data = JSON.parse(readFileSync(join(runDir, 'cross', 'nih14', 'data.json'), 'utf8')) as CrossData;
  const lp = JSON.parse(
    readFileSync(join(runDir, 'cross', 'nih14', 'predictions', 'lp-original-s0.json'), 'utf8'),
  ) as CrossPredictions;
  const k = 5;
  const onTarget = chooseThresholds(
    {
      probs: Float32Array.from(lp.test!.original.probs),
      labels: Float32Array.from(data.labels),
      mask: Float32Array.from(data.labelMask),
      n: data.rows,
      k,
    },
    config.metrics.thresholdRule,
  );
  const lpCell = x.evaluation.cells.find(
    (c) => c.group === 'linear-probe/original' && c.testVariant === 'original',
  )!;
  assert.is.not(onTarget.join(), lpCell.thresholds.join());

  // the reports
  const table = readFileSync(join(runDir, 'table2-nih14.md'), 'utf8');
  assert.match(table, /tested on nih14/);
  assert.match(table, /Thresholds and operating points come from the mimic validation split/);
  assert.match(table, new RegExp(`Test split, ${x.counts.test} images`));
  assert.match(table, /\| Joint fine-tuning \| masked \|/);
  const report = readFileSync(join(runDir, 'report.md'), 'utf8');
  assert.match(report, /## Across datasets/);
  assert.match(report, /\[table2-nih14\.md\]\(table2-nih14\.md\)/);

  // resume: the finished evaluation is read back, the test data not even opened
  const events: GridEvent[] = [];
  const evalFile = join(runDir, 'cross', 'nih14', 'evaluation.json');
  const mtime = statSync(evalFile).mtimeMs;
  const again = await runExperiment({
    config,
    backend,
    resume: runDir,
    prepareTestData: prepareTest,
    onEvent: (e) => events.push(e),
  });
  assert.is(prepared, 1);
  assert.ok(events.some((e) => e.kind === 'cell-done' && e.id === 'test:nih14' && e.skipped));
  assert.is(statSync(evalFile).mtimeMs, mtime);
  assert.is(toJson(again.results.testDatasets?.['nih14']?.evaluation), toJson(x.evaluation));

  // a lost evaluation and one lost prediction file: that model alone predicts again
  const preds = join(runDir, 'cross', 'nih14', 'predictions');
  const lpTime = statSync(join(preds, 'lp-original-s0.json')).mtimeMs;
  unlinkSync(evalFile);
  unlinkSync(join(preds, 'jft-masked-s0.json'));
  const third = await runExperiment({ config, backend, resume: runDir, prepareTestData: prepareTest });
  assert.is(prepared, 2);
  assert.ok(existsSync(join(preds, 'jft-masked-s0.json')));
  assert.is(statSync(join(preds, 'lp-original-s0.json')).mtimeMs, lpTime);
  const y = third.results.testDatasets?.['nih14'] as CrossDatasetResult;
  const close = (a: number, b: number) => (Number.isNaN(a) && Number.isNaN(b)) || Math.abs(a - b) < 1e-6;
  for (const [i, c] of x.evaluation.cells.entries())
    assert.ok(close(c.metrics.macroAUROC, y.evaluation.cells[i]!.metrics.macroAUROC), c.group);

  // re-evaluation with another threshold rule re-scores the stored NIH predictions with it
  const re = await reevaluate(runDir, backend, { thresholdRule: 'youden', bootstrap: 0 });
  const z = re.results.testDatasets?.['nih14'] as CrossDatasetResult;
  for (const c of z.evaluation.cells) {
    const own = re.results.evaluation.cells.find(
      (o) => o.group === c.group && o.seed === c.seed && o.testVariant === c.testVariant,
    )!;
    assert.equal(c.thresholds, own.thresholds);
  }
  assert.ok(existsSync(join(runDir, 'table2-nih14.md')));
  // eval lists a run's cells alphabetically; a resume after it still finds the test dataset done
  assert.is.not(z.models.join(), x.models.join(), 'eval wrote the models in another order');
  const afterEval: GridEvent[] = [];
  await runExperiment({
    config,
    backend,
    resume: runDir,
    prepareTestData: prepareTest,
    onEvent: (e) => afterEval.push(e),
  });
  assert.is(prepared, 2, 'its cache was not prepared again');
  assert.ok(afterEval.some((e) => e.kind === 'cell-done' && e.id === 'test:nih14' && e.skipped));

  // retrained cells (their folders deleted, the run resumed; 2 epochs now, so another model): their NIH
  // predictions are redone, never scored with the new model's thresholds; the other models' are kept
  const sha = (f: string) => `sha256:${createHash('sha256').update(readFileSync(f)).digest('hex')}`;
  const predFile = (m: string) => join(preds, `${m}.json`);
  const kept = ['zeroshot', 'jft-original-s0', 'jft-masked-s0'];
  const keptTimes = kept.map((m) => statSync(predFile(m)).mtimeMs);
  const lpIds = ['lp-original-s0', 'lp-masked-s0'];
  const oldLp = lpIds.map((m) => readPreds(predFile(m)));
  for (const m of lpIds) {
    assert.is(oldLp[lpIds.indexOf(m)]!.modelFingerprint, sha(join(runDir, 'cells', m, 'best.ckpt')));
    rmSync(join(runDir, 'cells', m), { recursive: true });
  }
  const cfgPath = join(runDir, 'config.json');
  const saved = JSON.parse(readFileSync(cfgPath, 'utf8'));
  writeFileSync(cfgPath, JSON.stringify({ ...saved, linearProbe: { ...saved.linearProbe, epochs: 2 } }));
  const retrainEvents: GridEvent[] = [];
  const fourth = await runExperiment({
    config,
    backend,
    resume: runDir,
    prepareTestData: prepareTest,
    onEvent: (e) => retrainEvents.push(e),
  });
  const phases = retrainEvents.filter((e) => e.kind === 'phase').map((e) => `${e.name}: ${e.detail}`);
  assert.ok(
    retrainEvents.some((e) => e.kind === 'cell-done' && e.id === 'test:nih14' && !e.skipped),
    phases.join('\n'),
  );
  for (const m of lpIds) {
    assert.ok(
      phases.some((p) => p.startsWith(`test predictions outdated: nih14/${m}: made by another model`)),
    );
    const now = readPreds(predFile(m));
    const ckpt = sha(join(runDir, 'cells', m, 'best.ckpt'));
    assert.is.not(ckpt, oldLp[lpIds.indexOf(m)]!.modelFingerprint, `${m} retrained into another model`);
    assert.is(now.modelFingerprint, ckpt);
    assert.is.not(toJson(now.test), toJson(oldLp[lpIds.indexOf(m)]!.test), `${m} predicted again`);
  }
  for (const [i, m] of kept.entries()) assert.is(statSync(predFile(m)).mtimeMs, keptTimes[i], `${m} kept`);
  const w = fourth.results.testDatasets?.['nih14'] as CrossDatasetResult;
  assert.is(w.modelFingerprints['lp-masked-s0'], sha(join(runDir, 'cells', 'lp-masked-s0', 'best.ckpt')));
  // a prediction file of another model is refused by eval, naming it (never scored)
  const stalePreds = readPreds(predFile('jft-original-s0'));
  writeFileSync(predFile('jft-original-s0'), JSON.stringify({ ...stalePreds, modelFingerprint: 'sha256:0' }));
  try {
    await reevaluate(runDir, backend);
    assert.unreachable('eval scored predictions of another model');
  } catch (e) {
    assert.match((e as Error).message, /predictions of jft-original-s0 were made by another model/);
  }
  writeFileSync(predFile('jft-original-s0'), JSON.stringify(stalePreds));
});

test('cxrmask run --config with test.datasets writes table2-<name>.md (the CLI builds the test cache)', async () => {
  if (!backend) {
    console.log(`SKIP ${skip}`);
    return;
  }
  const file = join(tmp, 'cli.json');
  // its own test cache folder: the CLI indexes and caches NIH's test split itself
  const config = cfg();
  const t = { dataset: 'nih14', root: nihData.root, chexmask: nihData.chexmask, cache: join(tmp, 'cli-nih') };
  writeFileSync(
    file,
    JSON.stringify({ ...config, name: 'cli', linearProbe: { enabled: false }, test: { datasets: [t] } }),
  );
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join('ts', 'cli', 'main.ts'), 'run', '--config', file, '--no-progress'],
    { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } },
  );
  assert.is(r.status, 0, r.stderr);
  const runDir = /run folder: (.+)/.exec(r.stderr)?.[1]?.trim() ?? '';
  assert.ok(existsSync(join(runDir, 'table2-nih14.md')), r.stderr);
  assert.match(r.stdout, /Table 2 tested on nih14: .*table2-nih14\.md/);
  const res = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
  const x = res.testDatasets?.['nih14'];
  assert.is(x?.cache, join(tmp, 'cli-nih'));
  assert.ok(x && x.counts.test > 0 && x.evaluation.groups.length === 4);
  assert.ok(existsSync(join(tmp, 'cli-nih')));
});

test('with a segmenter, the test dataset is also tested on its predicted contours', async () => {
  if (!backend) {
    console.log(`SKIP ${skip}`);
    return;
  }
  const { prepareTestData } = await import('../../ts/experiment/backend-real.js');
  const { Segmenter } = await import('../../ts/model/segmenter.js');
  // the exported segmenter's own weights: mask quality does not matter here, only where they are used
  const weights = join(tmp, 'seg-weights.pt');
  const seg = await Segmenter.load('models/seg-tiny', { device: 'cpu' });
  await seg.save(weights, { weightsOnly: true }).finally(() => seg.dispose());
  const config = parseConfig({
    ...cfg(),
    name: 'seg',
    segmenter: { dir: 'models/seg-tiny', weights },
    finetune: { enabled: false },
    metrics: { bootstrap: 0 },
  });
  const { runDir, results } = await runExperiment({
    config,
    backend,
    prepareTestData: (t) => prepareTestData(config, t, { log: () => {} }),
  });
  const x = results.testDatasets?.['nih14'] as CrossDatasetResult;
  const planes = JSON.parse(
    readFileSync(join(runDir, 'cross', 'nih14', 'predicted-masks', 'planes.json'), 'utf8'),
  ) as { rows: number[] };
  assert.is(planes.rows.length, x.counts.test);
  for (const g of ['zeroshot/per-finding', 'linear-probe/original', 'linear-probe/masked']) {
    const s = x.evaluation.summary.find((c) => c.group === g && c.testVariant === 'masked-pred');
    assert.ok(s, `${g} tested on predicted masks`);
    const acc = s.metrics.meanLabelAccuracy.mean;
    assert.ok(acc >= 0 && acc <= 1, `${g} ${acc}`);
  }
  // its thresholds too come from the training dataset's validation split, predicted masks and all
  for (const c of x.evaluation.cells.filter((c) => c.testVariant === 'masked-pred')) {
    const own = results.evaluation.cells.find(
      (o) => o.group === c.group && o.seed === c.seed && o.testVariant === c.testVariant,
    )!;
    assert.equal(c.thresholds, own.thresholds, c.group);
  }
  assert.ok(x.evaluation.differences.some((d) => d.contrast === 'masked-pred − original'));
  assert.match(readFileSync(join(runDir, 'table2-nih14.md'), 'utf8'), /Test: masked \(predicted\)/);
});

test('a run on a --preset paper cache builds its test dataset cache the same way, and refuses one made otherwise', async () => {
  if (!backend) {
    console.log(`SKIP ${skip}`);
    return;
  }
  const { prepareData, prepareTestData } = await import('../../ts/experiment/backend-real.js');
  const { readModelMeta } = await import('../../ts/model/meta.js');
  const { resolvePreprocess } = await import('../../ts/images/preprocess.js');
  const paper = resolvePreprocess({ preset: 'paper', size: readModelMeta(MODEL).imageSize });
  const own = parseConfig({
    ...cfg(),
    name: 'paper',
    data: { ...cfg().data, cache: join(tmp, 'paper-cache') },
    finetune: { enabled: false },
    metrics: { bootstrap: 0 },
    test: {
      datasets: [
        { dataset: 'nih14', root: nihData.root, chexmask: nihData.chexmask, cache: join(tmp, 'paper-nih') },
      ],
    },
  });
  const extra = await prepareData(own, { log: () => {}, preprocess: paper });
  const cacheDir = (extra['cache'] as { dir: string }).dir;
  const asked: (string | undefined)[] = [];
  const prepare = (t: TestDatasetSpec, pp?: ReturnType<typeof resolvePreprocess>) => {
    asked.push(pp?.preset);
    return prepareTestData(own, t, { log: () => {}, ...(pp ? { preprocess: pp } : {}) });
  };
  const { results, runDir } = await runExperiment({
    config: own,
    backend,
    extra,
    cacheDir,
    prepareTestData: prepare,
  });
  assert.equal(asked, ['paper']);
  const built = results.testDatasets?.['nih14'] as CrossDatasetResult;
  const testDir = (built.summary?.['cache'] as { dir?: string } | undefined)?.dir ?? '';
  const testCache = JSON.parse(readFileSync(join(testDir, 'cache.json'), 'utf8')) as {
    preprocess: { preset: string; resize: string };
  };
  assert.equal([testCache.preprocess.preset, testCache.preprocess.resize], ['paper', 'squash']);

  // a test cache made with the model's default (a prepare that ignores the run's preprocessing)
  const other = parseConfig({
    ...own,
    name: 'paper-2',
    test: { datasets: [{ ...own.test.datasets[0]!, cache: join(tmp, 'default-nih') }] },
  });
  let err: Error | null = null;
  await runExperiment({
    config: other,
    backend,
    extra,
    cacheDir,
    prepareTestData: (t) => prepareTestData(other, t, { log: () => {} }),
  }).catch((e: Error) => (err = e));
  assert.instance(err, ConfigError);
  assert.match(
    (err as unknown as Error).message,
    /^test dataset nih14: its cache .*default-nih.* was made with other preprocessing than the run's cache \(preset "biomedclip" \(test cache\) vs "paper" \(run\), .*resize "shortest-crop" \(test cache\) vs "squash" \(run\)/,
  );

  // an evaluation an earlier version scored on a cache of the model's default: scored again on resume
  const evalFile = join(runDir, 'cross', 'nih14', 'evaluation.json');
  const scored = JSON.parse(readFileSync(evalFile, 'utf8')) as CrossDatasetResult;
  const defaultDir = join(tmp, 'default-nih');
  const defaultKey = readdirSync(defaultDir).find((d) => existsSync(join(defaultDir, d, 'cache.json')))!;
  scored.fingerprint.cacheDir = join(defaultDir, defaultKey);
  writeFileSync(evalFile, JSON.stringify(scored));
  const phases: string[] = [];
  const again = await runExperiment({
    config: own,
    backend,
    resume: runDir,
    prepareTestData: prepare,
    onEvent: (e) => {
      if (e.kind === 'phase' && e.name === 'test evaluation outdated') phases.push(e.detail ?? '');
    },
  });
  assert.equal(phases, ['nih14: the test cache preprocessing changed since it was scored']);
  assert.is(again.results.testDatasets?.['nih14']?.fingerprint.cacheDir, testDir);
});

test.run();
