/** `--model` as a model folder or a trained cell: the cell's run names the model folder and its cache the contour settings. */

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { resolvePreprocess } from '../../ts/images/preprocess.js';
import { RUN_DATA_FILE } from '../../ts/model/run-files.js';
import { checkRunCheckpoint, runModel } from '../../ts/model/run-model.js';

import {
  checkpointSettings,
  type ModelSource,
  resolveModelSource,
  runSettings,
} from '../../ts/service/model-source.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-modelsrc-'));
const cache = join(tmp, 'cache', 'abc123');
/** What a `cxrmask cache --preset paper` records: squash resize, ImageNet statistics. */
const PAPER = resolvePreprocess({ preset: 'paper' });

/** A run folder as `cxrmask run` leaves it, as far as serving reads it: one cell's best.ckpt, config.json and data.json. */
function fakeRun(
  name: string,
  cellName: string,
  modelDir: string,
  data: object,
): { run: string; cell: string } {
  const run = join(tmp, 'runs', name);
  const cell = join(run, 'cells', cellName);
  mkdirSync(cell, { recursive: true });
  writeFileSync(join(cell, 'best.ckpt'), 'x');
  writeFileSync(join(run, 'config.json'), JSON.stringify({ model: { dir: modelDir } }));
  writeFileSync(join(run, RUN_DATA_FILE), JSON.stringify({ fingerprint: { cacheDir: cache }, ...data }));
  return { run, cell };
}

const { run, cell } = fakeRun('R', 'jft-masked-s0', 'models/tiny', { model: runModel('models/tiny') });

test.before(() => {
  mkdirSync(cache, { recursive: true });
  writeFileSync(
    join(cache, 'cache.json'),
    JSON.stringify({ contour: { thickness: 3, source: 'rle' }, preprocess: PAPER }),
  );
});

test('a model folder is used as is, with or without a checkpoint', () => {
  assert.equal(resolveModelSource('models/tiny'), { modelDir: 'models/tiny', checkpoint: null });
  assert.equal(resolveModelSource('models/tiny', 'x.ckpt'), {
    modelDir: 'models/tiny',
    checkpoint: 'x.ckpt',
  });
});

test('a cell (folder or its best.ckpt) brings its checkpoint, model folder, contour settings and preprocessing', () => {
  const want = {
    modelDir: 'models/tiny',
    checkpoint: join(cell, 'best.ckpt'),
    overlay: { thickness: 3, source: 'rle' },
    preprocess: PAPER,
  };
  assert.equal(resolveModelSource(cell), want);
  assert.equal(resolveModelSource(join(cell, 'best.ckpt')), want);
});

test('a checkpoint inside a run carries the run cache’s contour settings and preprocessing; others none', () => {
  assert.equal(checkpointSettings(join(cell, 'best.ckpt')), {
    overlay: { thickness: 3, source: 'rle' },
    preprocess: PAPER,
  });
  assert.equal(checkpointSettings(join(tmp, 'elsewhere', 'best.ckpt')), {});
  // a model folder given with that checkpoint gets them too
  assert.equal(resolveModelSource('models/tiny', join(cell, 'best.ckpt')).preprocess, PAPER);
});

test('anything else is a ConfigError naming the problem', () => {
  const cases: [string, string | null, RegExp][] = [
    [join(tmp, 'nothing'), null, /neither an exported model folder/],
    [cell, 'other.ckpt', /brings its own best.ckpt/],
  ];
  const loose = join(tmp, 'loose');
  mkdirSync(loose);
  writeFileSync(join(loose, 'best.ckpt'), 'x');
  cases.push([loose, null, /not inside a run's cells\/ folder/]);
  for (const [m, c, re] of cases) {
    try {
      resolveModelSource(m, c);
      assert.unreachable(m);
    } catch (e) {
      assert.instance(e, ConfigError);
      assert.match((e as Error).message, re);
    }
  }
  writeFileSync(join(run, 'config.json'), JSON.stringify({ model: { dir: join(tmp, 'gone') } }));
  assert.throws(() => resolveModelSource(cell), /has no model.json/);
});

test('a run whose cache is gone: its recorded settings, else the defaults with a warning', async () => {
  const old = join(tmp, 'runs', 'Old');
  mkdirSync(old, { recursive: true });
  writeFileSync(
    join(old, RUN_DATA_FILE),
    JSON.stringify({ fingerprint: { cacheDir: join(tmp, 'deleted') } }),
  );
  const warnings: Error[] = [];
  const listen = (w: Error) => warnings.push(w);
  process.on('warning', listen);
  try {
    assert.equal(runSettings(old), {});
    assert.is(runSettings(old).overlay, undefined);
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    // one warning of each kind, once per run (a CLI resolves the cell, then loads it)
    assert.equal(
      warnings.map((w) => (w as Error & { code?: string }).code),
      ['CXRMASK_CONTOUR_UNKNOWN', 'CXRMASK_PREPROCESS_UNKNOWN'],
    );
    assert.match(warnings[0]!.message, /the cache it trained on \(.*deleted\) is gone/);
    assert.match(
      warnings[1]!.message,
      /is gone and its data\.json predates recording its preprocessing, so images are preprocessed as the model folder's model\.json says/,
    );
    // a run that recorded them needs no cache
    writeFileSync(
      join(old, RUN_DATA_FILE),
      JSON.stringify({
        fingerprint: { cacheDir: join(tmp, 'deleted') },
        summaries: { cache: { contour: { thickness: 4, source: 'landmarks' }, preprocess: PAPER } },
      }),
    );
    assert.equal(runSettings(old), { overlay: { thickness: 4, source: 'landmarks' }, preprocess: PAPER });
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 2, 'no warning when the run recorded its settings');
    // a cache folder that is there but records no preprocessing: said as such, not as gone
    const partial = join(tmp, 'runs', 'Partial');
    const bare = join(tmp, 'cache', 'bare');
    mkdirSync(partial, { recursive: true });
    mkdirSync(bare, { recursive: true });
    writeFileSync(join(bare, 'cache.json'), JSON.stringify({ contour: { thickness: 3, source: 'rle' } }));
    writeFileSync(join(partial, RUN_DATA_FILE), JSON.stringify({ fingerprint: { cacheDir: bare } }));
    assert.equal(runSettings(partial), { overlay: { thickness: 3, source: 'rle' } });
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 3);
    assert.match(
      warnings[2]!.message,
      `${partial}: neither its data.json nor the cache it trained on (${bare}) records its preprocessing`,
    );
  } finally {
    process.off('warning', listen);
  }
});

test('a damaged recorded preprocessing is refused naming data.json (or cache.json) and the field', () => {
  const run = join(tmp, 'runs', 'Damaged');
  mkdirSync(run, { recursive: true });
  const dataJson = join(run, RUN_DATA_FILE);
  const record = (preprocess: unknown) =>
    writeFileSync(
      dataJson,
      JSON.stringify({
        fingerprint: { cacheDir: join(tmp, 'deleted') },
        summaries: { cache: { contour: { thickness: 4, source: 'landmarks' }, preprocess } },
      }),
    );
  const refused = (re: RegExp) => {
    try {
      runSettings(run);
      assert.unreachable('accepted');
    } catch (e) {
      assert.instance(e, ConfigError);
      assert.match((e as Error).message, re);
    }
  };
  record({ ...PAPER, resize: 'squish' });
  refused(/Damaged\/data\.json: field summaries\.cache\.preprocess\.resize .*\(recorded "squish"\)/);
  record({ ...PAPER, std: [0.229, 0.224] });
  refused(/data\.json: field summaries\.cache\.preprocess\.std/);
  record({ ...PAPER, size: '224' });
  refused(/data\.json: field summaries\.cache\.preprocess\.size/);
  record('paper');
  refused(/data\.json: field summaries\.cache\.preprocess must be an object, got string/);
  // the cache.json a run falls back to is checked the same way
  const cacheDir = join(tmp, 'cache', 'damaged');
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(
    join(cacheDir, 'cache.json'),
    JSON.stringify({ preprocess: { ...PAPER, kernel: 'bicubic' } }),
  );
  writeFileSync(dataJson, JSON.stringify({ fingerprint: { cacheDir } }));
  refused(/damaged\/cache\.json: field preprocess\.kernel/);
  // a sound record comes back as it was recorded
  record(PAPER);
  assert.equal(runSettings(run).preprocess, PAPER);
});

/** Warnings emitted while `f` runs (they come on the next tick). */
async function warningsOf<T>(f: () => T): Promise<{ value: T; warnings: (Error & { code?: string })[] }> {
  const warnings: Error[] = [];
  const listen = (w: Error) => warnings.push(w);
  process.on('warning', listen);
  try {
    const value = f();
    await new Promise((r) => setImmediate(r));
    return { value, warnings };
  } finally {
    process.off('warning', listen);
  }
}

/** What the CLI does with `--model` (and `--checkpoint`): resolveModelSource, then openModel's check. */
function served(model: string, checkpoint?: string): ModelSource {
  const s = resolveModelSource(model, checkpoint ?? null);
  if (s.checkpoint) checkRunCheckpoint(s.modelDir, s.checkpoint);
  return s;
}

function refusal(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    assert.instance(e, ConfigError);
    return e as Error;
  }
  throw new Error('expected a ConfigError');
}

test('a cell is refused on a model folder whose weights or model.json changed since its run recorded it', async () => {
  const modelDir = join(tmp, 'model-a');
  cpSync(join('models', 'tiny'), modelDir, { recursive: true });
  const { run: r, cell: c } = fakeRun('Fingerprinted', 'lp-original-s0', modelDir, {
    recordedAt: '2026-12-05T10:00:00Z',
    model: runModel(modelDir),
  });
  // unchanged (and a copy of the same files is the same model): served, without a warning
  const same = await warningsOf(() => served(c));
  assert.is(same.value.modelDir, modelDir);
  assert.is(same.value.checkpoint, join(c, 'best.ckpt'));
  assert.equal(same.warnings, []);

  // the folder re-exported with other weights: the cell's head would sit on another encoder
  const weights = join(modelDir, 'clip.pt');
  const original = readFileSync(weights);
  writeFileSync(weights, Buffer.concat([original, Buffer.from('re-exported')]));
  for (const m of [c, join(c, 'best.ckpt')]) {
    const e = refusal(() => served(m));
    assert.match(e.message, new RegExp(`^cannot use ${join(c, 'best.ckpt')} of run ${r}: `));
    assert.match(
      e.message,
      new RegExp(
        `the model folder ${modelDir} \\(config\\.json model\\.dir\\) is not the model this run started with: the weights file changed`,
      ),
    );
    assert.match(e.message, /recorded 2026-12-05T10:00:00Z in data\.json/);
  }
  // a checkpoint of that run put on a model folder by hand: the same check, on that folder
  const byHand = refusal(() => served(modelDir, join(c, 'best.ckpt')));
  assert.match(
    byHand.message,
    new RegExp(`the model folder ${modelDir} \\(config\\.json model\\.dir\\) is not`),
  );
  const other = join(tmp, 'model-b');
  cpSync(modelDir, other, { recursive: true });
  assert.match(
    refusal(() => served(other, join(c, 'best.ckpt'))).message,
    new RegExp(
      `the model folder ${other} \\(given with the checkpoint\\) is not the model this run started with: the weights file changed; .*\\(from ${modelDir}\\)`,
    ),
  );
  writeFileSync(weights, original);
  assert.is(served(modelDir, join(c, 'best.ckpt')).checkpoint, join(c, 'best.ckpt'));

  const meta = join(modelDir, 'model.json');
  const json = readFileSync(meta, 'utf8');
  writeFileSync(meta, `${json}\n`);
  assert.match(refusal(() => served(c)).message, /: model\.json changed; sha256 of model\.json:weights /);
  writeFileSync(meta, json);
  assert.is(served(c).modelDir, modelDir);
});

test('a cell named by a relative path (`.`, `best.ckpt`, `c/best.ckpt`) is the same cell: found, checked and given its contours', () => {
  const modelDir = join(tmp, 'model-rel');
  cpSync(join('models', 'tiny'), modelDir, { recursive: true });
  const { run: r, cell: c } = fakeRun('Relative', 'lp-masked-s0', modelDir, {
    summaries: { cache: { contour: { thickness: 5, source: 'landmarks' } } },
    model: runModel(modelDir),
  });
  const changed = join(tmp, 'model-rel-changed');
  cpSync(modelDir, changed, { recursive: true });
  writeFileSync(join(changed, 'model.json'), `${readFileSync(join(changed, 'model.json'), 'utf8')}\n`);
  const home = process.cwd();
  try {
    for (const [cwd, model, ckpt] of [
      [c, '.', 'best.ckpt'],
      [c, 'best.ckpt', './best.ckpt'],
      [join(r, 'cells'), 'lp-masked-s0', 'lp-masked-s0/best.ckpt'],
      [r, 'cells/lp-masked-s0/../lp-masked-s0', 'cells/lp-masked-s0/../lp-masked-s0/best.ckpt'],
    ] as const) {
      process.chdir(cwd);
      const s = served(model);
      assert.is(s.modelDir, modelDir, `${cwd}: --model ${model}`);
      assert.equal(s.overlay, { thickness: 5, source: 'landmarks' });
      // the run's checkpoint put on another model folder by a relative path: refused as when absolute
      assert.match(
        refusal(() => served(changed, ckpt)).message,
        /\(given with the checkpoint\) is not the model this run started with: model\.json changed/,
        `${cwd}: --checkpoint ${ckpt}`,
      );
      assert.equal(checkpointSettings(ckpt).overlay, { thickness: 5, source: 'landmarks' });
    }
  } finally {
    process.chdir(home);
  }
});

test('a run that recorded no model: its cell is served, with a warning that it cannot be checked', async () => {
  const { run: r, cell: c } = fakeRun('Unrecorded', 'lp-masked-s1', 'models/tiny', {});
  const { value, warnings } = await warningsOf(() => served(c));
  assert.is(value.checkpoint, join(c, 'best.ckpt'));
  const w = warnings.filter((x) => x.code === 'CXRMASK_MODEL_UNRECORDED');
  assert.is(w.length, 1);
  assert.match(
    w[0]!.message,
    new RegExp(
      `^${r}: the run recorded no model .*cannot be checked against the one ${join(c, 'best.ckpt')}`,
    ),
  );
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
