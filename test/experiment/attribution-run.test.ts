/**
 * A real (tiny) run with `attribution.enabled`: zero-shot, LP and JFT cells measured; results.json, attribution.json, the report's section and figure; re-evaluation keeps it.
 */

import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';
import { reevaluate } from '../../ts/report/reevaluate.js';
import { requireModel } from '../native/helpers.js';
import { countLoads, loadsDuringPhase } from './fake-backend.js';

test('a run with attribution enabled measures zero-shot and JFT cells on original and masked test images', async () => {
  requireModel();
  const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-attr-run-'));
  const { realBackend, prepareData } = await import('../../ts/experiment/backend-real.js');
  const { backend, counts } = countLoads(await realBackend());
  backend.setThreads?.(2);
  const { synthesize } = await import('../../ts/synth/synthesize.js');
  await synthesize({ out: join(tmp, 'data'), n: 200, seed: 5, width: 160, height: 160 });
  const config = parseConfig({
    name: 'attr',
    runsDir: join(tmp, 'runs'),
    data: {
      cache: join(tmp, 'cache'),
      root: join(tmp, 'data', 'mimic'),
      chexmask: join(tmp, 'data', 'chexmask', 'MIMIC-CXR-JPG.csv'),
    },
    model: { dir: 'models/tiny', device: 'cpu' },
    seeds: [0],
    trainVariants: ['masked'],
    linearProbe: { epochs: 1, batchSize: 32 },
    finetune: { epochs: 1, batchSize: 16, maxTrainImages: 16 },
    metrics: { bootstrap: 20 },
    attribution: { enabled: true, images: 3, steps: 4 },
  });
  await prepareData(config, { log: () => {} });
  // the loads between the attribution phase and the next one are the attribution step's
  const attribution = loadsDuringPhase(counts, 'attribution');
  const { runDir } = await runExperiment({ config, backend, onEvent: attribution.onEvent });
  assert.equal(
    attribution.loads(),
    // one tower for zero-shot and the LP head; the LP head and the JFT classifier each made and loaded once
    { clip: 1, headers: 2, made: 2, load: 2 },
  );
  assert.is(counts.liveClips, 0);
  const r = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
  const a = r.attribution!;
  assert.ok(a, 'no attribution in results.json');
  assert.equal(
    a.models.map((m) => m.model),
    ['zeroshot', 'lp-masked-s0', 'jft-masked-s0'],
  );
  assert.not.ok('skipped' in a, 'no list of skipped models: every model is measured or the step fails');
  for (const m of a.models) {
    // up to 3: the test images with a positive finding, evenly spaced
    assert.ok(m.images >= 1 && m.images <= 3, `${m.model}: ${m.images} images`);
    assert.is(m.images, a.models[0]!.images);
    for (const v of ['original', 'masked'] as const)
      assert.ok(m.anatomy[v].mean > 0 && m.anatomy[v].mean < 1);
    assert.ok(m.anatomyDiff.lo <= m.anatomyDiff.diff && m.anatomyDiff.diff <= m.anatomyDiff.hi);
  }
  // Synthetic ground truth: per finding, mass inside the drawn region and the pointing game vs chance.
  const located = a.models.filter((m) => m.localisation);
  assert.ok(located.length > 0, 'no model measured against the synthetic finding regions');
  for (const m of located)
    for (const v of ['original', 'masked'] as const) {
      assert.ok(m.localisation![v].length > 0, `${m.model} ${v}: no finding`);
      for (const f of m.localisation![v]) {
        assert.ok(f.images >= 1 && f.chance > 0 && f.chance < 1, `${m.model} ${f.finding}`);
        assert.ok(f.massInside >= 0 && f.massInside <= 1 && f.pointingRate >= 0 && f.pointingRate <= 1);
      }
    }
  assert.ok(existsSync(join(runDir, 'attribution.json')));
  assert.ok(existsSync(join(runDir, 'plots', 'attribution_anatomy.png')));
  // Example figures: zero-shot and the first JFT cell, each on up to two test images; linked in the report.
  assert.ok(a.examples!.some((e) => e.startsWith('plots/attribution-zeroshot-')));
  assert.ok(a.examples!.some((e) => e.startsWith('plots/attribution-jft-masked-s0-')));
  for (const e of a.examples!) assert.ok(existsSync(join(runDir, e)), e);
  const md = readFileSync(join(runDir, 'report.md'), 'utf8');
  assert.match(md, /## Where the models look \(attribution\)/);
  assert.match(
    readFileSync(join(runDir, 'report.html'), 'utf8'),
    /<img src="plots\/attribution-jft-masked-s0-\d+\.png"/,
  );
  assert.match(md, /\| jft-masked-s0 \| [123] \|/);
  assert.match(
    md,
    /\| model \| finding \| images \| mass inside: original \| masked \| pointing game: original/,
  );
  // Re-evaluation rebuilds results.json and keeps the measured attribution.
  await reevaluate(runDir, backend);
  const again = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
  assert.equal(again.attribution, r.attribution);
});

test.run();
