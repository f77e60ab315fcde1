/**
 * model.json of an export folder is read in one place (model/meta.ts): a folder without one is the
 * user's setting, a ConfigError that says how to export a model, for every caller (ClipModel,
 * tokenizer, run, predictor).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { readModelMeta } from '../../ts/model/meta.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-meta-'));

test('a folder without model.json: a ConfigError naming it and the export command', () => {
  try {
    readModelMeta(tmp);
    assert.unreachable('no model.json');
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.match((e as Error).message, `model folder ${tmp} has no model.json`);
    assert.match((e as Error).message, 'tools/export_biomedclip.py --random-init tiny');
  }
});

test('a model.json without its sizes names the field', () => {
  writeFileSync(join(tmp, 'model.json'), JSON.stringify({ preset: 'x', embedDim: 8, imageSize: 16 }));
  assert.throws(() => readModelMeta(tmp), /model\.json: field contextLength is missing or not a number/);
  writeFileSync(
    join(tmp, 'model.json'),
    JSON.stringify({
      preset: 'x',
      embedDim: 8,
      imageSize: 16,
      contextLength: 4,
      mean: [0, 0, 0],
      std: [1, 1, 1],
    }),
  );
  assert.is(readModelMeta(tmp).contextLength, 4);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
