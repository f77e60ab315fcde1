/** `--model` as a model folder or a trained cell: the cell's run names the model folder and its cache the contour settings. */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { RUN_DATA_FILE } from '../../ts/model/run-files.js';

import { checkpointContour, resolveModelSource, runContour } from '../../ts/service/model-source.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-modelsrc-'));
const run = join(tmp, 'runs', 'R');
const cell = join(run, 'cells', 'jft-masked-s0');
const cache = join(tmp, 'cache', 'abc123');

test.before(() => {
  mkdirSync(cell, { recursive: true });
  mkdirSync(cache, { recursive: true });
  writeFileSync(join(cell, 'best.ckpt'), 'x');
  writeFileSync(join(run, 'config.json'), JSON.stringify({ model: { dir: 'models/tiny' } }));
  writeFileSync(join(run, RUN_DATA_FILE), JSON.stringify({ fingerprint: { cacheDir: cache } }));
  writeFileSync(join(cache, 'cache.json'), JSON.stringify({ contour: { thickness: 3, source: 'rle' } }));
});

test('a model folder is used as is, with or without a checkpoint', () => {
  assert.equal(resolveModelSource('models/tiny'), { modelDir: 'models/tiny', checkpoint: null });
  assert.equal(resolveModelSource('models/tiny', 'x.ckpt'), {
    modelDir: 'models/tiny',
    checkpoint: 'x.ckpt',
  });
});

test('a cell (folder or its best.ckpt) brings its checkpoint, model folder and contour settings', () => {
  const want = {
    modelDir: 'models/tiny',
    checkpoint: join(cell, 'best.ckpt'),
    overlay: { thickness: 3, source: 'rle' },
  };
  assert.equal(resolveModelSource(cell), want);
  assert.equal(resolveModelSource(join(cell, 'best.ckpt')), want);
});

test('a checkpoint inside a run carries the run cache’s contour settings; others none', () => {
  assert.equal(checkpointContour(join(cell, 'best.ckpt')), { thickness: 3, source: 'rle' });
  assert.is(checkpointContour(join(tmp, 'elsewhere', 'best.ckpt')), undefined);
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
    assert.is(runContour(old), undefined);
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    assert.is(warnings.length, 1);
    assert.match(warnings[0]!.message, /the cache it trained on \(.*deleted\) is gone/);
    // a run that recorded them needs no cache
    writeFileSync(
      join(old, RUN_DATA_FILE),
      JSON.stringify({
        fingerprint: { cacheDir: join(tmp, 'deleted') },
        summaries: { cache: { contour: { thickness: 4, source: 'landmarks' } } },
      }),
    );
    assert.equal(runContour(old), { thickness: 4, source: 'landmarks' });
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 1, 'no warning when the run recorded its settings');
  } finally {
    process.off('warning', listen);
  }
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
