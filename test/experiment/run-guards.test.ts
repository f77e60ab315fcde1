/**
 * What a resumed or re-evaluated run may trust: a seed given twice is
 * refused; a config.json edited after cells were trained is refused by --resume and eval, naming the
 * cell and the fields; a model folder whose weights changed is refused by --resume (eval warns);
 * stored predictions that do not fit their split (short, null, strings, outside
 * [0, 1], rows of another split) are refused naming the file and field. Pure-JS fake backend.
 */

import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSeeds } from '../../ts/cli/config-merge.js';
import { ConfigError } from '../../ts/common/errors.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';
import { reevaluate } from '../../ts/report/reevaluate.js';
import { fakeBackend } from './fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-run-guards-'));
const input = {
  runsDir: join(tmp, 'runs'),
  name: 'guards',
  data: { cache: 'unused' },
  seeds: [0],
  trainVariants: ['original'],
  linearProbe: { epochs: 2, batchSize: 16, lr: 0.05 },
  finetune: { epochs: 1, batchSize: 16, lrHead: 0.001 },
  metrics: { bootstrap: 10 },
};
const config = parseConfig(input);

const readJsonFile = <T>(p: string) => JSON.parse(readFileSync(p, 'utf8')) as T;
const writeJsonFile = (p: string, v: unknown) => writeFileSync(p, JSON.stringify(v, null, 2));

async function rejects(p: Promise<unknown>, name: string, ...patterns: RegExp[]): Promise<Error> {
  try {
    await p;
  } catch (e) {
    const err = e as Error;
    assert.is(err.name, name, err.message);
    for (const re of patterns) assert.match(err.message, re, err.message);
    return err;
  }
  throw new Error(`expected a ${name}`);
}

test('a seed given twice is refused (config file and --seeds), naming the seed', () => {
  assert.throws(
    () => parseConfig({ ...input, seeds: [0, 1, 0] }),
    (e: Error) =>
      e instanceof ConfigError && /seeds: no duplicates \(seed 0 is given twice\)/.test(e.message),
  );
  assert.throws(
    () => parseSeeds('0,0'),
    (e: Error) => e instanceof ConfigError && /--seeds "0,0": seed 0 is given twice/.test(e.message),
  );
  assert.equal(parseSeeds('2, 0,1'), [2, 0, 1]);
});

let runDir = '';
let first: Results;

test('a finished run records, per cell, the settings it was computed with', async () => {
  const r = await runExperiment({ config, backend: fakeBackend() });
  runDir = r.runDir;
  first = r.results;
  const lp = readJsonFile<{ id: string; config: Record<string, Record<string, unknown>> }>(
    join(runDir, 'cells', 'lp-original-s0', 'cell.json'),
  );
  assert.is(lp.id, 'lp-original-s0');
  assert.is(lp.config['linearProbe']!['epochs'], 2);
  assert.is(lp.config['linearProbe']!['lr'], 0.05);
  const ft = readJsonFile<{ config: Record<string, Record<string, unknown>> }>(
    join(runDir, 'cells', 'jft-original-s0', 'cell.json'),
  );
  assert.is(ft.config['finetune']!['lrHead'], 0.001);
  const zs = readJsonFile<{ config: Record<string, Record<string, unknown>> }>(
    join(runDir, 'cells', 'zeroshot.cell.json'),
  );
  assert.match(String(zs.config['zeroshot']!['prompt']), /\{finding\}/);
});

test('resume and eval refuse a config.json edited after its cells were trained, naming cells and fields', async () => {
  const cfgPath = join(runDir, 'config.json');
  const saved = readJsonFile<Record<string, Record<string, unknown>>>(cfgPath);
  const resultsBefore = readFileSync(join(runDir, 'results.json'), 'utf8');
  writeJsonFile(cfgPath, {
    ...saved,
    linearProbe: { ...saved['linearProbe'], epochs: 3 },
    finetune: { ...saved['finetune'], lrHead: 0.5 },
  });
  const err = await rejects(
    runExperiment({ config, backend: fakeBackend(), resume: runDir }),
    'ConfigError',
    /cannot resume/,
    /lp-original-s0 .*linearProbe\.epochs 2 → 3/,
    /jft-original-s0 .*finetune\.lrHead 0\.001 → 0\.5/,
  );
  assert.not.match(err.message, /zeroshot/, 'the zero-shot cell does not depend on training settings');
  await rejects(
    reevaluate(runDir, fakeBackend()),
    'ConfigError',
    /cannot re-evaluate/,
    /linearProbe\.epochs/,
  );
  // nothing was rewritten with the config that was not used
  assert.is(readFileSync(join(runDir, 'results.json'), 'utf8'), resultsBefore);
  // a zero-shot prompt is the zero-shot cell's setting
  writeJsonFile(cfgPath, { ...saved, zeroshot: { ...saved['zeroshot'], prompt: 'x-ray: {finding}' } });
  await rejects(
    runExperiment({ config, backend: fakeBackend(), resume: runDir }),
    'ConfigError',
    /zeroshot .*zeroshot\.prompt/,
  );
  writeJsonFile(cfgPath, saved);
});

test('settings that do not change a cell (evaluation, new seeds) may change on resume; results.json reports them', async () => {
  const cfgPath = join(runDir, 'config.json');
  const saved = readJsonFile<Record<string, Record<string, unknown>>>(cfgPath);
  writeJsonFile(cfgPath, { ...saved, seeds: [0, 1], metrics: { ...saved['metrics'], bootstrap: 12 } });
  const r = await runExperiment({ config, backend: fakeBackend(), resume: runDir });
  assert.equal(r.results.config.seeds, [0, 1]);
  assert.is(r.results.config.metrics.bootstrap, 12);
  // seed 0's cells were kept, seed 1's trained with the same recorded settings
  const s1 = readJsonFile<{ config: unknown }>(join(runDir, 'cells', 'lp-original-s1', 'cell.json'));
  const s0 = readJsonFile<{ config: unknown }>(join(runDir, 'cells', 'lp-original-s0', 'cell.json'));
  assert.equal(s1.config, s0.config);
  const lp0 = (res: Results) =>
    res.training.find((t) => t.id === 'lp-original-s0')!.history!.map((h) => h.trainLoss);
  assert.equal(lp0(r.results), lp0(first));
});

/** Corrupts one stored prediction set and expects resume and eval to name file and field. */
async function refusedWith(
  mutate: (probs: unknown[], failed: unknown[]) => void,
  field: RegExp,
  why: RegExp,
  file = join('cells', 'lp-original-s0', 'result.json'),
) {
  const path = join(runDir, file);
  const backup = `${path}.bak`;
  copyFileSync(path, backup);
  try {
    const doc = readJsonFile<Record<string, unknown>>(path);
    const grid = (
      file.endsWith('zeroshot.json')
        ? (doc['protocols'] as Record<string, unknown>)['per-finding']
        : doc['predictions']
    ) as Record<string, Record<string, { probs: unknown[]; failed: unknown[] }>>;
    const set = grid['test']!['original']!;
    mutate(set.probs, set.failed);
    writeJsonFile(path, doc);
    // one after the other: the run folder's lock admits one at a time, in one process too
    for (const start of [
      () => runExperiment({ config, backend: fakeBackend(), resume: runDir }),
      () => reevaluate(runDir, fakeBackend()),
    ]) {
      const e = await rejects(start(), 'DataError', why);
      assert.ok(e.message.startsWith(path), e.message);
      assert.match(e.message, field);
    }
  } finally {
    copyFileSync(backup, path);
    rmSync(backup);
  }
}

test('stored predictions 5 values short are refused, naming the file and field', async () => {
  await refusedWith(
    (probs) => probs.splice(0, 5),
    /field "predictions\.test\.original\.probs"/,
    /115 values, expected 120 \(24 test rows × 5 labels\)/,
  );
});

test('null (outside failed rows), strings and values outside [0, 1] are refused', async () => {
  await refusedWith(
    (probs) => {
      probs[7] = null;
    },
    /predictions\.test\.original\.probs\[7\]/,
    /null is not a probability in \[0, 1\] \(null only for a row listed in failed\)/,
  );
  await refusedWith(
    (probs) => {
      probs[3] = '0.5';
    },
    /probs\[3\]/,
    /"0\.5" is not a probability/,
  );
  await refusedWith(
    (probs) => {
      probs[0] = 1.5;
    },
    /probs\[0\]/,
    /1\.5 is not a probability/,
  );
  await refusedWith(
    (_p, failed) => {
      failed.push(1); // row 1 is a validation row of the fake cache, not a test row
    },
    /predictions\.test\.original\.failed/,
    /1 is not a test row of the cache/,
  );
  await refusedWith(
    (probs) => probs.push(0.5),
    /protocols\.per-finding\.test\.original\.probs/,
    /121 values, expected 120/,
    join('cells', 'zeroshot.json'),
  );
});

test('a null for a row listed in failed is a skipped image, not an error', async () => {
  const path = join(runDir, 'cells', 'lp-original-s0', 'result.json');
  const backup = `${path}.bak`;
  copyFileSync(path, backup);
  try {
    const doc = readJsonFile<{
      predictions: Record<string, Record<string, { probs: unknown[]; failed: number[] }>>;
    }>(path);
    const set = doc.predictions['test']!['original']!;
    // the fake cache's first test row is cache row 0
    for (let k = 0; k < 5; k++) set.probs[k] = null;
    set.failed.push(0);
    writeJsonFile(path, doc);
    const r = await reevaluate(runDir, fakeBackend());
    assert.ok(r.results.evaluation.cells.length > 0);
  } finally {
    copyFileSync(backup, path);
    rmSync(backup);
  }
});

test('a truncated result.json is refused naming the file (was a bare SyntaxError)', async () => {
  const path = join(runDir, 'cells', 'lp-original-s0', 'result.json');
  const backup = `${path}.bak`;
  copyFileSync(path, backup);
  try {
    writeFileSync(path, readFileSync(path, 'utf8').slice(0, 100));
    await rejects(reevaluate(runDir, fakeBackend()), 'DataError', /result\.json: cannot read: /);
  } finally {
    copyFileSync(backup, path);
    rmSync(backup);
  }
});

test('eval overrides under selection meanLabelAccuracy: later evals and resume still run; a training change is still refused', async () => {
  // the threshold rule is recorded per cell here: it picked best.ckpt's epoch
  const accCfg = parseConfig({
    ...input,
    name: 'eval-overrides',
    metrics: { ...input.metrics, selection: 'meanLabelAccuracy' },
  });
  const { runDir: dir } = await runExperiment({ config: accCfg, backend: fakeBackend() });
  const cfgPath = join(dir, 'config.json');
  const trainingConfig = readFileSync(cfgPath, 'utf8');
  const lpRecord = readJsonFile<{ config: { metrics: Record<string, unknown> } }>(
    join(dir, 'cells', 'lp-original-s0', 'cell.json'),
  );
  assert.is(lpRecord.config.metrics['thresholdRule'], 'accuracy');

  const e1 = await reevaluate(dir, fakeBackend(), { thresholdRule: 'youden' });
  assert.is(
    e1.results.config.metrics.thresholdRule,
    'youden',
    'results.json reports the rule it was scored with',
  );
  assert.equal(e1.results.run.evaluationOverrides, { thresholdRule: 'youden' });
  assert.is(readFileSync(cfgPath, 'utf8'), trainingConfig, 'config.json keeps the training-time settings');
  // the second eval was refused before (config.json held youden, the cells accuracy)
  const e2 = await reevaluate(dir, fakeBackend(), { thresholdRule: 'youden' });
  assert.equal(e2.results.evaluation, e1.results.evaluation);
  // a later eval without flags keeps the earlier overrides; a new flag joins them
  const e3 = await reevaluate(dir, fakeBackend(), { bootstrap: 11 });
  assert.is(e3.results.config.metrics.thresholdRule, 'youden');
  assert.is(e3.results.config.metrics.bootstrap, 11);
  // resume is not refused either, and scores with the eval's settings
  const r = await runExperiment({ config: accCfg, backend: fakeBackend(), resume: dir });
  assert.is(r.results.config.metrics.thresholdRule, 'youden');
  assert.is(r.results.config.metrics.selection, 'meanLabelAccuracy');
  assert.equal(r.results.evaluation, e3.results.evaluation);

  // a real change of what trained the cells is still refused, by resume and eval alike
  const saved = readJsonFile<Record<string, Record<string, unknown>>>(cfgPath);
  writeJsonFile(cfgPath, { ...saved, metrics: { ...saved['metrics'], thresholdRule: 'f1' } });
  await rejects(
    runExperiment({ config: accCfg, backend: fakeBackend(), resume: dir }),
    'ConfigError',
    /cannot resume/,
    /lp-original-s0 .*metrics\.thresholdRule "accuracy" → "f1"/,
  );
  writeJsonFile(cfgPath, { ...saved, linearProbe: { ...saved['linearProbe'], epochs: 3 } });
  await rejects(
    reevaluate(dir, fakeBackend(), { thresholdRule: 'youden' }),
    'ConfigError',
    /cannot re-evaluate/,
    /linearProbe\.epochs 2 → 3/,
  );
});

/** The warnings `p` emits (process 'warning' events, which arrive on a later tick). */
async function warningsOf<T>(
  p: () => Promise<T>,
): Promise<{ value: T; warnings: (Error & { code?: string })[] }> {
  const warnings: Error[] = [];
  const on = (w: Error) => warnings.push(w);
  process.on('warning', on);
  try {
    const value = await p();
    await new Promise((r) => setImmediate(r));
    return { value, warnings };
  } finally {
    process.off('warning', on);
  }
}

test('resume refuses a model folder whose weights changed, naming it and both fingerprints; eval warns', async () => {
  const modelDir = join(tmp, 'model-a');
  cpSync(join('models', 'tiny'), modelDir, { recursive: true });
  const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  const weights = join(modelDir, 'clip.pt');
  const before = `${hex(readFileSync(join(modelDir, 'model.json')))}:${hex(readFileSync(weights))}`;
  // a relative model.dir is saved absolute: a resume from another working directory opens the same folder
  const cfg = parseConfig({ ...input, name: 'model', model: { dir: relative(process.cwd(), modelDir) } });
  const { runDir: dir } = await runExperiment({ config: cfg, backend: fakeBackend() });
  const saved = readJsonFile<{ model: { dir: string } }>(join(dir, 'config.json'));
  assert.is(saved.model.dir, modelDir);
  const dataPath = join(dir, 'data.json');
  assert.equal(readJsonFile<{ model: unknown }>(dataPath).model, { dir: modelDir, sha256: before });

  const original = readFileSync(weights);
  writeFileSync(weights, Buffer.concat([original, Buffer.from('other weights')]));
  const after = `${hex(readFileSync(join(modelDir, 'model.json')))}:${hex(readFileSync(weights))}`;
  const resultsBefore = readFileSync(join(dir, 'results.json'), 'utf8');
  const err = await rejects(
    runExperiment({ config: cfg, backend: fakeBackend(), resume: dir }),
    'DataError',
    /cannot resume/,
    new RegExp(
      `the model folder ${modelDir} \\(config\\.json model\\.dir\\) is not the model this run started with`,
    ),
  );
  assert.is((err as Error & { reason?: string }).reason, 'model-changed');
  assert.ok(err.message.startsWith(`${dataPath}: `), err.message);
  const short = (h: string) =>
    h
      .split(':')
      .map((p) => `${p.slice(0, 12)}…`)
      .join(':');
  assert.ok(
    err.message.includes(`${short(before)} when recorded (from ${modelDir}), ${short(after)} now`),
    err.message,
  );
  assert.is(readFileSync(join(dir, 'results.json'), 'utf8'), resultsBefore, 'nothing was rewritten');

  // eval recomputes nothing from the model: it scores the stored predictions, with a warning
  const ev = await warningsOf(() => reevaluate(dir, fakeBackend()));
  const changed = ev.warnings.filter((w) => w.code === 'CXRMASK_MODEL_CHANGED');
  assert.is(changed.length, 1);
  assert.ok(changed[0]!.message.includes(short(after)), changed[0]!.message);

  // the same model again (the weights restored) resumes
  writeFileSync(weights, original);
  await runExperiment({ config: cfg, backend: fakeBackend(), resume: dir });

  // a run recorded before the model was: a warning, not a refusal, and the model is recorded from then on
  const { model: _m, ...older } = readJsonFile<Record<string, unknown>>(dataPath);
  writeJsonFile(dataPath, older);
  const old = await warningsOf(() => runExperiment({ config: cfg, backend: fakeBackend(), resume: dir }));
  const unrecorded = old.warnings.filter((w) => w.code === 'CXRMASK_MODEL_UNRECORDED');
  assert.is(unrecorded.length, 1);
  assert.match(unrecorded[0]!.message, new RegExp(`no model in data\\.json.*${modelDir}`));
  assert.equal(readJsonFile<{ model: unknown }>(dataPath).model, { dir: modelDir, sha256: before });
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
