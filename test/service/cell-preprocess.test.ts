/**
 * A cell trained on a `--preset paper` cache (squash resize, ImageNet statistics) is predicted, served
 * and explained with that cache's preprocessing, not the model folder's biomedclip default: `cxrmask
 * predict` on one of its test images gives the probabilities the run stored for that row. A preset
 * asked otherwise is refused by name. Real layers: synthetic data, the tiny model, the addon.
 */

import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { FINDINGS } from '../../ts/common/labels.js';
import { joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { realBackend } from '../../ts/experiment/backend-real.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { openCache } from '../../ts/images/cache.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { resolvePreprocess } from '../../ts/images/preprocess.js';
import { type FindingScores, MaskingPredictor } from '../../ts/service/predictor.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { runCli } from '../cli/helpers.js';

const MODEL = 'models/tiny';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-cell-preprocess-'));
/** The cell, one of its test images and the probabilities the run stored for that image. */
let cell = '';
let image = '';
let stored: number[] = [];

const worst = (got: FindingScores, want: readonly number[]) =>
  Math.max(...FINDINGS.map((f, k) => Math.abs(got[f] - want[k]!)));

test.before(async () => {
  if (!existsSync(join(MODEL, 'model.json'))) return;
  // portrait images: a squash and a shortest-side crop see different pixels
  const s = await synthesize({ out: join(tmp, 'data'), n: 48, seed: 4, width: 120, height: 176 });
  const labelPolicy = { uncertain: 'ignore', blank: 'zeros' } as const;
  const { entries } = await buildIndex({ root: s.mimicRoot, ...labelPolicy });
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    entries.map((e) => e.dicomId),
  );
  // what `cxrmask cache --preset paper` builds
  const built = await buildCache({
    entries,
    root: s.mimicRoot,
    chexmask: rows,
    out: join(tmp, 'cache'),
    preprocess: { preset: 'paper' },
    labelPolicy,
  });
  const backend = await realBackend();
  backend.setThreads?.(2);
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'paper',
    data: { cache: built.dir },
    model: { dir: MODEL, device: 'cpu' },
    seeds: [0],
    trainVariants: ['original'],
    zeroshot: { enabled: false },
    finetune: { enabled: false },
    linearProbe: { epochs: 2, batchSize: 16 },
    metrics: { bootstrap: 10 },
  });
  const { runDir } = await runExperiment({ config, backend });
  cell = join(runDir, 'cells', 'lp-original-s0');
  const result = JSON.parse(readFileSync(join(cell, 'result.json'), 'utf8'));
  stored = result.predictions.test.original.probs.slice(0, FINDINGS.length);
  const cache = openCache(built.dir);
  try {
    image = join(s.mimicRoot, cache.entries[cache.indicesOf('test')[0]!]!.path);
  } finally {
    cache.close();
  }
});

test('the run records its cache preprocessing in data.json', () => {
  if (!cell) return console.log(`SKIP ${MODEL} not exported`);
  const data = JSON.parse(readFileSync(join(cell, '..', '..', 'data.json'), 'utf8'));
  assert.equal(data.summaries.cache.preprocess, resolvePreprocess({ preset: 'paper' }));
});

test('predict --model <cell> on a test image gives the probabilities the run stored for it', () => {
  if (!cell) return;
  const r = runCli(['predict', image, '--model', cell, '--device', 'cpu', '--json']);
  assert.is(r.code, 0, r.err);
  const got = (JSON.parse(r.out) as { original: FindingScores }).original;
  assert.ok(worst(got, stored) < 1e-5, `predict ${JSON.stringify(got)} vs stored ${stored}`);
});

test('MaskingPredictor.load of the checkpoint takes its preprocessing; a preset asked otherwise is refused by name', async () => {
  if (!cell) return;
  const checkpoint = join(cell, 'best.ckpt');
  const load = (preprocess?: Record<string, unknown>) =>
    MaskingPredictor.load({
      modelDir: MODEL,
      checkpoint,
      device: 'cpu',
      ...(preprocess ? { preprocess } : {}),
    });
  for (const p of [await load(), await load({ preset: 'paper' })]) {
    try {
      assert.ok(worst((await p.predict(image)).original, stored) < 1e-5);
    } finally {
      await p.dispose();
    }
  }
  for (const [asked, named] of [
    [{ preset: 'biomedclip' }, 'preset "biomedclip" (asked) vs "paper" (trained)'],
    [
      { std: [0.26862954, 0.26130258, 0.27577711] },
      'std [0.26862954,0.26130258,0.27577711] (asked) vs [0.229,0.224,0.225] (trained)',
    ],
  ] as const) {
    try {
      await (await load(asked)).dispose();
      assert.unreachable(`served a paper-preset cell with ${JSON.stringify(asked)}`);
    } catch (e) {
      assert.instance(e, ConfigError);
      assert.match((e as Error).message, named);
    }
  }
  // the same head off its run (nothing recorded): the model folder's biomedclip preprocessing, and
  // other scores, which is what predict gave the cell before it took its cache's
  const loose = join(tmp, 'loose.ckpt');
  copyFileSync(checkpoint, loose);
  const p = await MaskingPredictor.load({ modelDir: MODEL, checkpoint: loose, device: 'cpu' });
  try {
    assert.ok(worst((await p.predict(image)).original, stored) > 1e-4);
  } finally {
    await p.dispose();
  }
});

test('explain --model <cell>: its preprocessing (the score is the stored one); --preset biomedclip is refused by name', () => {
  if (!cell) return;
  const k = 3;
  const explain = (...more: string[]) => {
    const out = join(tmp, `ex-${more.join('-') || 'default'}.png`);
    const r = runCli([
      'explain',
      '--image',
      image,
      '--model',
      cell,
      '--finding',
      FINDINGS[k]!,
      '--method',
      'gradient',
      '--device',
      'cpu',
      '--out',
      out,
      ...more,
    ]);
    return { r, json: out.replace(/\.png$/, '.json') };
  };
  for (const more of [[], ['--preset', 'paper']]) {
    const { r, json } = explain(...more);
    assert.is(r.code, 0, r.err);
    const logit = JSON.parse(readFileSync(json, 'utf8')).inputs[0].score as number;
    assert.ok(Math.abs(1 / (1 + Math.exp(-logit)) - stored[k]!) < 1e-5, `${more}: ${logit}`);
  }
  const { r } = explain('--preset', 'biomedclip');
  assert.is(r.code, 2, r.err);
  assert.match(r.err, 'preset "biomedclip" (asked) vs "paper" (trained)');
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
