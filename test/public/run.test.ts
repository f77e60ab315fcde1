/**
 * runExperiment, reevaluate and writeReports from the package root, lightly: the grid itself is tested
 * in test/experiment/. One seed of linear probing on the pure-JS fake backend gives a run folder whose
 * results.json is what the call returned, with its reports; a re-evaluation changes the thresholds only.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type GridEvent, parseConfig, reevaluate, runExperiment, writeReports } from '../../ts/index.js';
import { fakeBackend } from '../experiment/fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-public-run-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('one seed of linear probing: results.json, Table 2, reports; re-evaluated with a fixed threshold', async () => {
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'public',
    data: { cache: 'unused' },
    seeds: [0],
    zeroshot: { enabled: false },
    finetune: { enabled: false },
    linearProbe: { epochs: 2, batchSize: 16, lr: 0.05 },
    metrics: { bootstrap: 50 },
  });
  const events: GridEvent['kind'][] = [];
  const { runDir, results } = await runExperiment({
    config,
    backend: fakeBackend(),
    onEvent: (e) => events.push(e.kind),
  });
  assert.ok(events.includes('cell-done'));
  assert.equal(
    JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')),
    JSON.parse(JSON.stringify(results)),
  );
  assert.equal(
    results.evaluation.groups.map((g) => g.key),
    ['linear-probe/original', 'linear-probe/masked'],
  );
  // each trained model on each test variant
  assert.is(results.evaluation.cells.length, 4);
  for (const c of results.evaluation.cells) assert.ok(c.metrics.macroAUROC >= 0 && c.metrics.macroAUROC <= 1);
  const table2 = readFileSync(join(runDir, 'table2.md'), 'utf8');
  assert.match(table2, /linear/i);
  const files = await writeReports(runDir, results);
  assert.is(files.table2, join(runDir, 'table2.md'));
  assert.is(readFileSync(files.table2, 'utf8'), table2);
  assert.ok(existsSync(files.reportHtml));

  const re = await reevaluate(runDir, fakeBackend(), { thresholdRule: 'fixed', fixedThreshold: 0.5 });
  assert.equal(re.results.evaluation.cells[0]!.thresholds, [0.5, 0.5, 0.5, 0.5, 0.5]);
  assert.equal(
    re.results.evaluation.cells.map((c) => c.metrics.macroAUROC),
    results.evaluation.cells.map((c) => c.metrics.macroAUROC),
  );
});

test.run();
