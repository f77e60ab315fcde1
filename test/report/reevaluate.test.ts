/**
 * `eval` of a run folder that was edited or moved: it scores the cells config.json plans (as `run
 * --resume` does), says which finished cells it left out, keeps only checked facts from the old
 * results.json, and records the folder it evaluated.
 */

import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';
import { evalSummary, reevaluate } from '../../ts/report/reevaluate.js';
import { rejects } from '../data/helpers.js';
import { fakeBackend } from '../experiment/fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-reeval-'));
const readResults = (dir: string) => JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
const editJson = (
  file: string,
  edit: (v: { run: Record<string, unknown>; [k: string]: unknown }) => void,
) => {
  const v = JSON.parse(readFileSync(file, 'utf8'));
  edit(v);
  writeFileSync(file, JSON.stringify(v));
};

let three = '';
async function threeSeedRun(): Promise<string> {
  if (three) return three;
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'seeds',
    data: { cache: 'unused' },
    seeds: [0, 1, 2],
    linearProbe: { epochs: 2, batchSize: 16, lr: 0.05 },
    finetune: { enabled: false },
    metrics: { bootstrap: 20 },
  });
  three = (await runExperiment({ config, backend: fakeBackend() })).runDir;
  return three;
}

/** A copy of the finished 3-seed run. */
async function copyOfRun(name: string): Promise<string> {
  const to = join(tmp, name);
  cpSync(await threeSeedRun(), to, { recursive: true });
  return to;
}

test('seeds taken out of config.json: eval scores the planned cells, as run --resume does, and names the others', async () => {
  const a = await copyOfRun('eval-a');
  const b = await copyOfRun('eval-b');
  for (const d of [a, b]) editJson(join(d, 'config.json'), (c) => (c['seeds'] = [0]));
  const re = await reevaluate(a, fakeBackend());
  const resumed = await runExperiment({
    config: parseConfig({ data: { cache: 'x' } }),
    backend: fakeBackend(),
    resume: b,
  });
  const lp = (r: Results) =>
    r.evaluation.summary
      .filter((s) => s.group.startsWith('linear-probe'))
      .map((s) => [s.group, s.testVariant, s.seeds, s.metrics.macroAUROC]);
  assert.equal(lp(re.results), lp(resumed.results));
  assert.ok(
    lp(re.results).every((row) => row[2] === 1),
    JSON.stringify(lp(re.results)),
  );
  assert.equal(re.results.seeds, [0]);
  assert.equal(readResults(a).evaluation.summary, re.results.evaluation.summary);
  // the same table; only the eval's says it was re-evaluated
  const table2 = (d: string) => readFileSync(join(d, 'table2.md'), 'utf8').split('\n').slice(2).join('\n');
  const note = /\n\nRe-evaluated from the stored predictions [^\n]*, with config\.json's metric settings\./;
  assert.match(table2(a), note);
  assert.is(table2(a).replace(note, ''), table2(b));
  assert.equal(re.ignored, ['lp-masked-s1', 'lp-masked-s2', 'lp-original-s1', 'lp-original-s2']);
  assert.match(
    evalSummary(re),
    'Not scored, not planned by config.json (4 finished cells on disk): lp-masked-s1, lp-masked-s2, lp-original-s1, lp-original-s2.',
  );
  // zero-shot switched off: its stored predictions are left out too
  editJson(join(a, 'config.json'), (c) => (c['zeroshot'] = { ...(c['zeroshot'] as object), enabled: false }));
  const noZs = await reevaluate(a, fakeBackend());
  assert.ok(noZs.ignored.includes('zeroshot'));
  assert.not.ok(noZs.results.evaluation.summary.some((s) => s.group.startsWith('zeroshot')));
});

test('a moved run folder: results.json records the folder evaluated, and the report shows it', async () => {
  const moved = await copyOfRun('moved');
  const re = await reevaluate(moved, fakeBackend());
  assert.is(re.results.run.dir, moved);
  assert.is(readResults(moved).run.dir, moved);
  assert.is(
    re.results.run.startedAt,
    readResults(await threeSeedRun()).run.startedAt,
    'the run facts are kept',
  );
  assert.ok(readFileSync(join(moved, 'report.md'), 'utf8').includes(`Run \`${moved}\``));
});

test('a hand-edited results.json: a kept field of the wrong shape is an error naming the file and the field', async () => {
  const d = await copyOfRun('edited');
  const file = join(d, 'results.json');
  editJson(file, (r) => (r['run']['timings'] = null));
  await rejects(
    reevaluate(d, fakeBackend()),
    new RegExp(`^${file}, field "run\\.timings": .*expected object`),
  );
  editJson(file, (r) => {
    r['run']['timings'] = { totalSeconds: 1, features: {}, cells: {} };
    r['run']['git'] = 'abc';
  });
  await rejects(reevaluate(d, fakeBackend()), /results\.json, field "run\.git": /);
  editJson(file, (r) => {
    r['run']['git'] = { commit: null, dirty: null };
    r['segmenter'] = { dir: 1 };
  });
  await rejects(reevaluate(d, fakeBackend()), /results\.json, field "segmenter\.dir": /);
  // fields outside the list are not carried over
  editJson(file, (r) => {
    r['segmenter'] = null;
    r['run']['evaluationOverrides'] = { bootstrap: 7 };
    r['run']['planted'] = 'x';
  });
  const re = await reevaluate(d, fakeBackend());
  assert.is(re.results.run.evaluationOverrides, undefined);
  assert.is((re.results.run as Record<string, unknown>)['planted'], undefined);
  assert.is(re.results.run.timings.totalSeconds, 1);
  // not an object at all
  writeFileSync(file, '[1, 2]');
  await rejects(reevaluate(d, fakeBackend()), /results\.json: .*expected object/);
});

test('a run folder from someone else with links planted in it: eval replaces the links, their targets are untouched', async () => {
  const d = await copyOfRun('planted');
  const victim = join(tmp, 'my-notes.txt');
  writeFileSync(victim, 'precious notes\n');
  const planted = ['table2.md', 'report.md', 'report.html'];
  for (const f of planted) {
    rmSync(join(d, f));
    symlinkSync(victim, join(d, f));
  }
  await reevaluate(d, fakeBackend());
  assert.is(readFileSync(victim, 'utf8'), 'precious notes\n');
  for (const f of planted) assert.ok(lstatSync(join(d, f)).isFile(), `${f} is still a link`);
  assert.match(readFileSync(join(d, 'table2.md'), 'utf8'), /^# Table 2/);
  assert.is(readResults(d).run.dir, d);
});

test("re-evaluated with other metric settings: report.md carries Table 2's caption, and every report says it was re-evaluated and how", async () => {
  const d = await copyOfRun('reeval-note');
  const read = (f: string) => readFileSync(join(d, f), 'utf8');
  assert.not.match(read('report.md'), /Re-evaluated/);
  const re = await reevaluate(d, fakeBackend(), { thresholdRule: 'fixed', fixedThreshold: 0.4 });
  const at = re.results.run.reevaluatedAt!;
  assert.ok(at);
  const note = `Re-evaluated from the stored predictions (\`cxrmask eval\`) at ${at}, with these metric settings over config.json's: thresholdRule=fixed, fixedThreshold=0.4.`;
  for (const f of ['table2.md', 'per_disease.md', 'report.md', 'report.html'])
    assert.ok(
      read(f).includes(
        f.endsWith('.html') ? note.replace(/`([^`]+)`/, '<code>$1</code>').replace(/'/g, '&#39;') : note,
      ),
      f,
    );
  // the caption table2.md has (split, images, seeds and sd, threshold rule, bootstrap) is report.md's too
  const caption = read('table2.md').split('\n')[2]!;
  assert.match(
    caption,
    /^Test split, \d+ images\. Mean ± sample sd \(n − 1\) over 3 seeds \(0, 1, 2\).* a fixed threshold 0\.4\b.*\(20 resamples;/,
  );
  assert.ok(
    read('report.md').includes(`## Table 2 — Mean per-finding accuracy\n\n${caption}\n\n${note}\n\n| Setup`),
  );
  // scored again without flags: the settings left by the first eval still apply, and the note says so
  const again = await reevaluate(d, fakeBackend());
  assert.ok(
    read('report.md').includes(
      `at ${again.results.run.reevaluatedAt}, with these metric settings over config.json's: thresholdRule=fixed, fixedThreshold=0.4.`,
    ),
  );
});

test('eval --threshold alone: the reports and definitions name the fallback threshold it sets, not 0.5', async () => {
  const d = await copyOfRun('fallback');
  const re = await reevaluate(d, fakeBackend(), { fixedThreshold: 0.3 });
  const fallback =
    /a finding with one class among its validation labels gets config\.metrics\.fixedThreshold, here 0\.3, under every rule\./;
  assert.match(re.results.definitions['thresholds']!, fallback);
  assert.match(
    re.results.definitions['thresholds']!,
    /thresholdRule \(here accuracy;.*operatingPointRule \(here youden;/,
  );
  assert.not.match(re.results.definitions['thresholds']!, /gets 0\.5/);
  const read = (f: string) => readFileSync(join(d, f), 'utf8');
  assert.match(read('report.md'), fallback);
  assert.ok(
    read('table2.md').includes(
      '(maximise accuracy; a finding with one class among its validation labels gets 0.3)',
    ),
  );
  assert.ok(
    read('per_disease.md').includes(
      "F1 at per-finding thresholds chosen on the validation split (Youden's J; a finding with one class among its validation labels gets 0.3)",
    ),
  );
});

test('eval with another primary metric: the plots the new report does not draw are removed, nothing else in plots/', async () => {
  const d = await copyOfRun('stale-plots');
  const plots = join(d, 'plots');
  assert.ok(existsSync(join(plots, 'meanLabelAccuracy.png')));
  const victim = join(tmp, 'my-figure.png');
  writeFileSync(victim, 'mine');
  symlinkSync(victim, join(plots, 'exactMatch.png'));
  writeFileSync(join(plots, 'notes.png'), 'mine');
  mkdirSync(join(plots, 'macroSensitivity.png'));
  await reevaluate(d, fakeBackend(), { primary: 'macroF1' });
  assert.not.ok(existsSync(join(plots, 'meanLabelAccuracy.png')), 'the old primary metric plot is gone');
  const report = readFileSync(join(d, 'report.md'), 'utf8');
  for (const p of ['macroF1.png', 'macroAUROC.png', 'per_disease_delta_auroc.png']) {
    assert.ok(existsSync(join(plots, p)), p);
    assert.ok(report.includes(`](plots/${p})`), p);
  }
  assert.not.ok(report.includes('meanLabelAccuracy.png'));
  // a link with a plot's name is removed, its target untouched; other files and a folder stay
  assert.is(lstatSync(join(plots, 'exactMatch.png'), { throwIfNoEntry: false }), undefined);
  assert.is(readFileSync(victim, 'utf8'), 'mine');
  assert.is(readFileSync(join(plots, 'notes.png'), 'utf8'), 'mine');
  assert.ok(lstatSync(join(plots, 'macroSensitivity.png')).isDirectory());
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
