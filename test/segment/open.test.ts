/**
 * What serve/predict load for --segmenter: an export folder (its own weights), a `segmenter train`
 * output folder (train.json names the export, best.pt the trained weights), or a .pt in one.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';

import { Segmenter } from '../../ts/model/segmenter.js';
import { openSegmenter, resolveSegmenter } from '../../ts/segment/open.js';
import { MaskingPredictor } from '../../ts/service/predictor.js';
import { MODEL_DIR, ROOT } from '../native/helpers.js';

const SEG_DIR = join(ROOT, 'models', 'seg-tiny');
const dirs: string[] = [];
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('a train output folder loads the export named in train.json with best.pt over it', async () => {
  const out = mkdtempSync(join(tmpdir(), 'cxrmask-segopen-'));
  dirs.push(out);
  const trained = await Segmenter.load(SEG_DIR, { device: 'cpu', lr: 1e-2 });
  const S = trained.size;
  const n = 2;
  const x = new Float32Array(n * 3 * S * S).map((_, i) => Math.sin(i * 0.013));
  const bits = new Uint8Array(n * S * S).map(
    (_, p) => (p % S < S / 2 ? 1 : 2) * (((p / S) | 0) % S > S / 4 ? 1 : 0),
  );
  for (let i = 0; i < 3; i++) await trained.trainStep(x, n, bits);
  await trained.save(join(out, 'best.pt'), { weightsOnly: true });
  writeFileSync(join(out, 'train.json'), JSON.stringify({ modelDir: resolve(SEG_DIR), epoch: 1 }));

  assert.equal(resolveSegmenter(out), { dir: resolve(SEG_DIR), weights: join(out, 'best.pt') });
  assert.equal(resolveSegmenter(join(out, 'best.pt')), {
    dir: resolve(SEG_DIR),
    weights: join(out, 'best.pt'),
  });
  assert.equal(resolveSegmenter(SEG_DIR), { dir: SEG_DIR, weights: null });

  const fromRun = await openSegmenter(out, { device: 'cpu' });
  const fromExport = await openSegmenter(SEG_DIR, { device: 'cpu', untrained: true });
  const want = await trained.logits(x, n);
  const got = await fromRun.logits(x, n);
  assert.ok(
    want.every((v, i) => v === got[i]),
    'train folder did not load best.pt',
  );
  const untrained = await fromExport.logits(x, n);
  assert.ok(
    untrained.some((v, i) => v !== want[i]),
    'the export has the trained weights?',
  );
  assert.is(fromRun.trained, true);
  assert.is(fromExport.trained, false);
  await Promise.all([trained.dispose(), fromRun.dispose(), fromExport.dispose()]);
});

test('an untrained export is refused by openSegmenter and MaskingPredictor unless asked for', async () => {
  await openSegmenter(SEG_DIR, { device: 'cpu' }).then(
    () => assert.unreachable('an untrained export opened'),
    (e: Error) => {
      assert.instance(e, ConfigError);
      assert.match(e.message, /never trained.*untrained: true.*--allow-untrained/);
    },
  );
  const seg = await Segmenter.load(SEG_DIR, { device: 'cpu', lr: 1e-2 });
  assert.is(seg.trained, false);
  await MaskingPredictor.load({ modelDir: MODEL_DIR, device: 'cpu', segmenter: seg }).then(
    () => assert.unreachable('the predictor took an untrained segmenter'),
    (e: Error) => assert.match(e.message, /seg-tiny was never trained/),
  );
  const p = await MaskingPredictor.load({
    modelDir: MODEL_DIR,
    device: 'cpu',
    segmenter: seg,
    untrained: true,
  });
  assert.is(p.segmenter, seg);
  // One step makes it a trained segmenter: accepted without the flag.
  const again = await Segmenter.load(SEG_DIR, { device: 'cpu', lr: 1e-2 });
  const S = again.size;
  await again.trainStep(new Float32Array(3 * S * S).fill(0.1), 1, new Uint8Array(S * S).fill(1));
  assert.is(again.trained, true);
  const q = await MaskingPredictor.load({ modelDir: MODEL_DIR, device: 'cpu', segmenter: again });
  await Promise.all([p.dispose(), q.dispose()]);
});

test('openSegmenter checks its own options by its own name: untrained is a boolean, a typo lists untrained', async () => {
  const known = '(known: device, lr, weightDecay, gradClip, bf16, threshold, untrained)';
  for (const [options, message] of [
    [{ untrained: 'no' }, "openSegmenter option 'untrained': untrained must be a boolean, got 'no'"],
    [{ untrained: 1 }, "openSegmenter option 'untrained': untrained must be a boolean, got number"],
    [{ untrained: true, devcie: 'cpu' }, `unknown openSegmenter option 'devcie' ${known}`],
  ] as const) {
    const e = await openSegmenter(SEG_DIR, options as never).then(
      async (seg) => {
        await seg.dispose();
        return null;
      },
      (x: unknown) => x as Error,
    );
    assert.instance(e, TypeError, `opened with ${JSON.stringify(options)}`);
    assert.is(e!.message, message);
  }
});

test('folders that are neither, and train folders without weights or export, are ConfigErrors', () => {
  const empty = mkdtempSync(join(tmpdir(), 'cxrmask-segopen-'));
  dirs.push(empty);
  assert.throws(
    () => resolveSegmenter(empty),
    (e: Error) => e instanceof ConfigError && /train\.json/.test(e.message),
  );
  assert.throws(
    () => resolveSegmenter(join(empty, 'nope')),
    (e: Error) => e instanceof ConfigError,
  );
  writeFileSync(join(empty, 'train.json'), JSON.stringify({ modelDir: join(empty, 'gone') }));
  assert.throws(() => resolveSegmenter(empty), /does not name an existing exported segmenter/);
  writeFileSync(join(empty, 'train.json'), JSON.stringify({ modelDir: resolve(SEG_DIR) }));
  assert.throws(() => resolveSegmenter(empty), /no best\.pt yet/);
});

test.run();
