/**
 * The grid past one process, with the real addon and the tiny model on a small synthetic set:
 * `--devices cpu,cpu` (cells side by side) gives exactly the sequential results, and
 * `cxrmask run --nproc 2` at half the per-rank batch matches one process within float32 rounding.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import type { Backend } from '../../ts/experiment/backend.js';
import type { CellResult } from '../../ts/experiment/cells.js';
import { type ConfigInput, parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';
import { spawnTs } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-dpgrid-'));
let backend: Backend;
const CELLS = ['lp-original-s0', 'lp-masked-s0', 'jft-original-s0', 'jft-masked-s0'];

const input = (name: string, lpBatch: number, ftBatch: number): ConfigInput => ({
  name,
  runsDir: join(tmp, 'runs'),
  data: {
    cache: join(tmp, 'cache'),
    root: join(tmp, 'data', 'mimic'),
    chexmask: join(tmp, 'data', 'chexmask', 'MIMIC-CXR-JPG.csv'),
  },
  // one intra-op thread everywhere: reductions then add in the same order in every process
  model: { dir: 'models/tiny', device: 'cpu', threads: 1 },
  seeds: [0],
  linearProbe: { epochs: 2, batchSize: lpBatch, lr: 3e-3 },
  finetune: { epochs: 1, batchSize: ftBatch, lrEncoder: 1e-3, lrHead: 1e-2, maxTrainImages: 32 },
  metrics: { bootstrap: 20 },
});

test.before(async () => {
  const { realBackend, prepareData } = await import('../../ts/experiment/backend-real.js');
  backend = await realBackend();
  const { synthesize } = await import('../../ts/synth/synthesize.js');
  await synthesize({ out: join(tmp, 'data'), n: 240, seed: 5, width: 256, height: 256 });
  await prepareData(parseConfig(input('prep', 32, 8)), { log: () => {} });
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const cell = (runDir: string, id: string) =>
  JSON.parse(readFileSync(join(runDir, 'cells', id, 'result.json'), 'utf8')) as CellResult;
const results = (runDir: string) => JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
let sequential = '';

test('--devices cpu,cpu: cells side by side give exactly the sequential results', async () => {
  sequential = (await runExperiment({ config: parseConfig(input('seq', 32, 8)), backend })).runDir;
  const events: string[] = [];
  const { runDir } = await runExperiment({
    config: parseConfig(input('dev', 32, 8)),
    backend,
    devices: ['cpu', 'cpu'],
    onEvent: (e) => {
      if (e.kind === 'phase' && e.name === 'cell-on-device') events.push(e.detail!);
    },
  });
  assert.equal(events.map((e) => e.split('@')[0]).sort(), [...CELLS].sort());
  for (const id of CELLS) {
    const a = cell(sequential, id);
    const b = cell(runDir, id);
    assert.equal(b.predictions, a.predictions, id);
    assert.equal(
      b.history!.map((h) => h.trainLoss),
      a.history!.map((h) => h.trainLoss),
      id,
    );
  }
  assert.equal(results(runDir).evaluation.summary, results(sequential).evaluation.summary);
});

test('cxrmask run --nproc 2 at half the batch matches one process (within 1e-5)', async () => {
  const cfg = join(tmp, 'nproc.json');
  writeFileSync(cfg, JSON.stringify(input('nproc', 16, 4)));
  const launcher = spawnTs(
    'ts/cli/main.ts',
    ['run', '--config', cfg, '--progress', 'false', '--nproc', '2'],
    {},
  );
  const end = await launcher.exited;
  assert.is(end.code, 0, launcher.stderr());
  const runs = readdirSync(join(tmp, 'runs')).filter((d) => d.endsWith('-nproc'));
  assert.is(runs.length, 1, 'both ranks wrote into one run folder');
  const runDir = join(tmp, 'runs', runs[0]!);
  // Same global batches; only float32 summation order differs (docs/distributed.md).
  for (const id of CELLS) {
    const a = cell(sequential, id);
    const b = cell(runDir, id);
    for (const [k, h] of a.history!.entries())
      assert.ok(Math.abs(b.history![k]!.trainLoss - h.trainLoss) <= 1e-5, `${id} epoch ${k + 1} loss`);
    for (const split of ['validate', 'test'] as const)
      for (const v of ['original', 'masked'] as const) {
        const pa = a.predictions[split][v].probs;
        const pb = b.predictions[split][v].probs;
        assert.is(pb.length, pa.length);
        let max = 0;
        for (let i = 0; i < pa.length; i++) max = Math.max(max, Math.abs(pb[i]! - pa[i]!));
        assert.ok(max <= 1e-5, `${id} ${split}/${v}: max |Δp| = ${max}`);
      }
  }
});

test.run();
