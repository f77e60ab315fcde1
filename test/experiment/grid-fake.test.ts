/**
 * Grid orchestration, resume and reports against the pure-JS fake backend (no LibTorch): fast.
 */

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InterruptedError } from '../../ts/common/errors.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { plannedCells } from '../../ts/experiment/cells.js';
import { parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';
import { publishResults } from '../../ts/report/publish.js';
import { evalSummary, reevaluate } from '../../ts/report/reevaluate.js';

import { fakeBackend } from './fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-grid-'));
const cfg = (over: Record<string, unknown> = {}) =>
  parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'fake',
    data: { cache: 'unused' },
    seeds: [0, 1, 2],
    // 1 of 72 training rows is unreadable in the first test: above the 1% default, allowed here
    linearProbe: { epochs: 4, batchSize: 16, lr: 0.05, maxUnreadableShare: 0.05 },
    finetune: { epochs: 3, batchSize: 16, lrHead: 0.02, maxUnreadableShare: 0.05 },
    metrics: { bootstrap: 100 },
    ...over,
  });

function strip(r: Results) {
  // everything but timings / run metadata
  return JSON.parse(
    JSON.stringify({
      e: r.evaluation,
      t: r.training.map((x) => ({
        ...x,
        history: x.history?.map((h) => ({
          ...h,
          seconds: 0,
          trainSeconds: 0,
          dataWaitSeconds: 0,
          checkpoint: { bytes: h.checkpoint?.bytes, seconds: 0 },
        })),
      })),
    }),
  );
}

test('full grid: every cell present, reports written, new folder per run', async () => {
  const config = cfg();
  const { runDir, results } = await runExperiment({ config, backend: fakeBackend({ bad: [5, 7] }) });
  const onDisk = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
  const groups = onDisk.evaluation.groups.map((g) => g.key).sort();
  assert.equal(groups, [
    'finetune/masked',
    'finetune/original',
    'linear-probe/masked',
    'linear-probe/original',
    'zeroshot/per-finding',
    'zeroshot/softmax-5way',
  ]);
  // 2 zero-shot protocols × 2 test variants + 2 setups × 2 train variants × 3 seeds × 2 test variants
  assert.is(onDisk.evaluation.cells.length, 4 + 24);
  assert.is(onDisk.evaluation.summary.length, 12);
  for (const s of onDisk.evaluation.summary) {
    assert.ok(s.metrics.meanLabelAccuracy.mean !== null, `${s.group} ${s.testVariant}`);
    assert.ok(s.metrics.macroAUROC.mean !== null);
  }
  assert.is(onDisk.evaluation.differences.length, 6 * 2);
  // trained rows learn the (easy) fake task
  const jft = onDisk.evaluation.summary.find(
    (s) => s.group === 'finetune/original' && s.testVariant === 'original',
  )!;
  assert.ok(jft.metrics.macroAUROC.mean > 0.75, `jft auroc ${jft.metrics.macroAUROC.mean}`);
  assert.is(jft.seeds, 3);
  // unreadable images: skipped and counted, not fatal (row 5 is test, 7 is train)
  assert.is(onDisk.data.skippedImages.features['original'], 2);
  assert.ok(onDisk.run.git !== undefined && onDisk.config.seeds.length === 3);
  for (const f of [
    'table2.md',
    'per_disease.md',
    'report.md',
    'report.html',
    'plots/macroAUROC.png',
    'plots/per_disease_delta_auroc.png',
    'plots/overlay_example.png',
  ])
    assert.ok(existsSync(join(runDir, f)), f);
  const t2 = readFileSync(join(runDir, 'table2.md'), 'utf8');
  assert.match(t2, /Mean per-finding accuracy/);
  assert.match(t2, /Joint fine-tuning \| masked/);
  assert.match(t2, / ± /);
  assert.ok(results.run.timings.totalSeconds > 0);
  const second = await runExperiment({ config, backend: fakeBackend({ bad: [5, 7] }) });
  assert.is.not(second.runDir, runDir);
  assert.equal(strip(second.results), strip(results), 'deterministic');
});

test('interrupt mid-cell then --resume equals an uninterrupted run', async () => {
  const config = cfg({
    name: 'resume',
    seeds: [0],
    zeroshot: { enabled: false },
    linearProbe: { enabled: false },
  });
  const full = await runExperiment({ config, backend: fakeBackend() });
  let steps = 0;
  const signal = { stop: false };
  // stop in the 2nd epoch of the first fine-tuning cell (6 steps per epoch with 72 train rows / 16)
  const b = fakeBackend({
    beforeTrainStep: () => {
      if (++steps === 8) signal.stop = true;
    },
  });
  let runDir = '';
  try {
    await runExperiment({
      config,
      backend: b,
      signal,
      onEvent: (e) => {
        if (e.kind === 'phase' && e.name === 'plan') runDir = '';
      },
    });
    assert.unreachable('should be interrupted');
  } catch (e) {
    assert.instance(e, InterruptedError);
  }
  const runs = readdirSync(join(tmp, 'runs'))
    .filter((d) => d.includes('resume'))
    .sort();
  runDir = join(tmp, 'runs', runs[runs.length - 1]!);
  const state = JSON.parse(readFileSync(join(runDir, 'cells', 'jft-original-s0', 'state.json'), 'utf8'));
  assert.is(state.epochsDone, 1, 'epoch 1 checkpointed, epoch 2 lost');
  const resumed = await runExperiment({ config, backend: fakeBackend(), resume: runDir });
  assert.is(resumed.runDir, runDir);
  assert.ok(resumed.results.run.resumed);
  assert.equal(strip(resumed.results), strip(full.results));
});

test('a stop during the final bootstrap ends the run as interrupted, and --resume scores it', async () => {
  // 10^5 replicates on 36 test rows: seconds of arithmetic that a stop cuts short
  const config = cfg({
    name: 'stop-eval',
    seeds: [0],
    finetune: { enabled: false },
    metrics: { bootstrap: 100_000 },
  });
  const signal = { stop: false };
  let runDir = '';
  const stopped = await runExperiment({
    config,
    backend: fakeBackend(),
    signal,
    onRunDir: (d) => {
      runDir = d;
    },
    onEvent: (e) => {
      // as a Ctrl-C handler would, once the event loop gets a turn during the bootstrap
      if (e.kind === 'phase' && e.name === 'evaluate') setTimeout(() => (signal.stop = true), 50);
    },
  }).then(
    () => null,
    (e: unknown) => e,
  );
  assert.instance(stopped, InterruptedError);
  assert.match(String(stopped), /bootstrap/);
  assert.not.ok(existsSync(join(runDir, 'results.json')), 'no results.json from an interrupted evaluation');
  const resumed = await runExperiment({
    config: { ...config, metrics: { ...config.metrics, bootstrap: 100 } },
    backend: fakeBackend(),
    resume: runDir,
  });
  assert.is(resumed.runDir, runDir);
  assert.ok(existsSync(join(runDir, 'results.json')));
  assert.ok(resumed.results.evaluation.differences.every((d) => d.samples > 0));
});

test('eval: re-evaluation from stored predictions keeps the run facts', async () => {
  const config = cfg({ name: 'reeval', seeds: [0], finetune: { enabled: false } });
  const { runDir, results } = await runExperiment({ config, backend: fakeBackend() });
  const re = await reevaluate(runDir, fakeBackend(), { thresholdRule: 'fixed', fixedThreshold: 0.5 });
  assert.is(re.results.config.metrics.thresholdRule, 'fixed');
  assert.is(re.results.run.startedAt, results.run.startedAt);
  assert.ok(re.results.run.reevaluatedAt);
  const t = re.results.evaluation.cells.find((c) => c.group === 'linear-probe/original')!;
  assert.equal(t.thresholds, [0.5, 0.5, 0.5, 0.5, 0.5]);
  // threshold-free numbers do not change
  assert.equal(
    re.results.evaluation.cells.map((c) => c.metrics.macroAUROC),
    results.evaluation.cells.map((c) => c.metrics.macroAUROC),
  );
  assert.match(readFileSync(join(runDir, 'table2.md'), 'utf8'), /fixed threshold 0\.5/);
});

test('eval stopped during its bootstrap writes nothing: results.json, the reports and the eval settings stay', async () => {
  const config = cfg({ name: 'reeval-stop', seeds: [0], finetune: { enabled: false } });
  const { runDir } = await runExperiment({ config, backend: fakeBackend() });
  const files = ['results.json', 'table2.md', 'report.md'];
  const before = files.map((f) => readFileSync(join(runDir, f), 'utf8'));
  const signal = { stop: false };
  setTimeout(() => (signal.stop = true), 50);
  const got = await reevaluate(
    runDir,
    fakeBackend(),
    { thresholdRule: 'fixed', bootstrap: 100_000 },
    signal,
  ).then(
    () => null,
    (e: unknown) => e,
  );
  assert.instance(got, InterruptedError);
  assert.equal(
    files.map((f) => readFileSync(join(runDir, f), 'utf8')),
    before,
  );
  assert.not.ok(existsSync(join(runDir, 'eval-settings.json')), 'the interrupted settings are not recorded');
  assert.not.ok(existsSync(join(runDir, 'run.lock')));
});

test('publishing results: the old reports go before results.json is replaced, so a failure in between leaves none that disagree', async () => {
  const config = cfg({ name: 'publish', seeds: [0], finetune: { enabled: false } });
  const { runDir } = await runExperiment({ config, backend: fakeBackend() });
  const old = ['table2.md', 'per_disease.md', 'report.md', 'report.html', 'plots/macroAUROC.png'];
  for (const f of old) assert.ok(existsSync(join(runDir, f)), f);
  // results the report writer cannot render: results.json is written, the reports fail
  const broken = { schema: 1 } as unknown as Results;
  await publishResults(runDir, broken).then(
    () => assert.unreachable('the reports of broken results were written'),
    () => {},
  );
  assert.equal(JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')), { schema: 1 });
  for (const f of old) assert.not.ok(existsSync(join(runDir, f)), `${f} of the earlier scoring is left`);
  assert.ok(existsSync(join(runDir, 'config.json')), 'nothing else is touched');
});

test('eval of a partly finished run: rows with fewer seeds say so; the planned cells without a result are named', async () => {
  const config = cfg({
    name: 'partial',
    seeds: [0, 1],
    finetune: { enabled: false },
    metrics: { bootstrap: 20 },
  });
  const { runDir } = await runExperiment({ config, backend: fakeBackend() });
  const complete = await reevaluate(runDir, fakeBackend());
  assert.equal(complete.missing, []);
  assert.not.match(evalSummary(complete), /Not scored/);
  assert.not.match(readFileSync(join(runDir, 'table2.md'), 'utf8'), /seeds\)/);

  rmSync(join(runDir, 'cells', 'lp-masked-s0', 'result.json'));
  rmSync(join(runDir, 'cells', 'zeroshot.json'));
  const re = await reevaluate(runDir, fakeBackend());
  assert.equal(re.missing, ['zeroshot', 'lp-masked-s0']);
  const table = readFileSync(join(runDir, 'table2.md'), 'utf8');
  assert.match(table, /^\| Linear probing \| masked \(1\/2 seeds\) \| \d\.\d{3} \| \d\.\d{3} \| /m);
  assert.match(table, /^\| Linear probing \| original \| \d\.\d{3} ± \d\.\d{3} \| /m);
  assert.match(
    table,
    /Mean ± sample sd \(n − 1\) over 2 seeds \(0, 1\) for trained models; zero-shot is deterministic\. Rows marked \(k\/n seeds\)/,
  );
  const printed = evalSummary(re);
  assert.ok(printed.startsWith(readFileSync(join(runDir, 'table2.md'), 'utf8')), printed);
  assert.ok(
    printed.includes(
      `Not scored, no result yet (2 planned cells): zeroshot, lp-masked-s0. Rows marked (k/n seeds) are over the seeds they have; \`cxrmask run --resume ${runDir}\` computes the rest.`,
    ),
    printed,
  );
});

test('plannedCells lists every unit', () => {
  const ids = plannedCells(cfg({ seeds: [3, 4, 5] }));
  assert.is(ids.length, 1 + 2 * 2 * 3);
  assert.ok(ids.includes('jft-masked-s5') && ids.includes('lp-original-s3') && ids[0] === 'zeroshot');
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
