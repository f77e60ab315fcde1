/**
 * model.json's sizes are checked against the loaded model: an embedDim, contextLength or imageSize
 * that misstates the TorchScript export is refused at load, naming the file and the field, instead of
 * slicing embeddings wrongly or failing on the first prompt or image.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { MODEL_DIR, requireModel } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-model-meta-'));

/** A copy of the tiny export with model.json fields replaced (and files removed). */
function misstated(name: string, fields: Record<string, unknown>, remove: string[] = []): string {
  requireModel();
  const dir = join(tmp, name);
  cpSync(MODEL_DIR, dir, { recursive: true });
  const file = join(dir, 'model.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...fields }));
  for (const f of remove) rmSync(join(dir, f));
  return dir;
}

async function refused(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.match((e as Error).message, re, (e as Error).message);
    return;
  }
  assert.unreachable('expected the load to be refused');
}

test('the true sizes load', async () => {
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  assert.is(clip.embedDim, 64);
  await clip.dispose();
});

test('an embedDim that misstates the model is refused by ClipModel.load and Classifier.create', async () => {
  const dir = misstated('embed', { embedDim: 512 });
  const re = new RegExp(
    `${dir}/model\\.json: embedDim 512, but the model's (image )?embeddings have 64 numbers`,
  );
  await refused(ClipModel.load(dir, { device: 'cpu' }), re);
  await refused(Classifier.create({ modelDir: dir, device: 'cpu' }), re);
});

test('a contextLength the text tower refuses, or that differs from the exported tokenizer, is refused', async () => {
  // the tiny text tower has 128 positions: 256 tokens cannot pass
  const long = misstated('long', { contextLength: 256 }, ['tokenizer_config.json']);
  await refused(
    ClipModel.load(long, { device: 'cpu' }),
    /model\.json: contextLength 256: the text tower refuses 256 tokens/,
  );
  const short = misstated('short', { contextLength: 32 });
  await refused(
    ClipModel.load(short, { device: 'cpu' }),
    /model\.json: contextLength 32, but the exported tokenizer \(.*tokenizer_config\.json\) pads to 64/,
  );
});

test('an imageSize the image tower refuses is refused at load, naming model.json (not at the first image)', async () => {
  const dir = misstated('size', { imageSize: 128 });
  await refused(
    ClipModel.load(dir, { device: 'cpu' }),
    new RegExp(`^${dir}/model\\.json: imageSize 128: the image tower refuses 128×128 images \\(`),
  );
  await ClipModel.load(dir, { device: 'cpu' }).then(
    () => assert.unreachable('a model.json imageSize the tower refuses was loaded'),
    (e) => assert.instance(e, ConfigError),
  );
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
