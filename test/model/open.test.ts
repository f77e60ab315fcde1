/**
 * The model kinds: the kind a checkpoint records (and what a checkpoint written before it was records
 * instead), the head's weights as the addon returns them against the file read in PyTorch, and
 * openModel opening each kind from its checkpoint alone.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { openModel } from '../../ts/model/open.js';
import {
  DEFAULT_NEGATIVE_PROMPT,
  DEFAULT_PROMPT,
  findingPrompts,
  promptPair,
} from '../../ts/model/prompts.js';
import { RUN_DATA_FILE } from '../../ts/model/run-files.js';
import { runModel } from '../../ts/model/run-model.js';
import { loadTokenizer } from '../../ts/model/tokenizer.js';
import { diagnostics } from '../../ts/native.js';
import { MaskingPredictor } from '../../ts/service/predictor.js';
import { tempDir } from '../data/helpers.js';
import { python } from '../explain/helpers.js';
import { MODEL_DIR, ROOT, requireModel } from '../native/helpers.js';

const S = 224;

function images(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n * 3 * S * S }, (_, i) => Math.sin(0.37 * i + seed));
}

/** Runs Python on a checkpoint: `code` sees `m` (the torch.jit module) and `out` (a dict printed as JSON). */
function py(ckpt: string, code: string): Record<string, unknown> {
  const script = `import json, sys, torch\nm = torch.jit.load(sys.argv[1])\nout = {}\n${code}\nprint(json.dumps(out))`;
  const r = spawnSync(python(), ['-c', script, ckpt], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

/** A trained linear-probe head and a fine-tuned classifier, saved as a run saves best.ckpt. */
async function checkpoints(dir: string) {
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const x = images(2, 1);
  const feats = await clip.encodeImage(x, 2);
  const d = clip.embedDim;
  await clip.dispose();
  const labels = Float32Array.from({ length: 10 }, (_, i) => i % 2);
  const lp = await Classifier.create({ inputDim: d, device: 'cpu', seed: 4, lrHead: 0.05 });
  await lp.trainStep(feats, 2, labels);
  const lpCkpt = join(dir, 'lp.ckpt');
  await lp.save(lpCkpt, { weightsOnly: true });
  const jft = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 5, lrEncoder: 1e-3 });
  await jft.trainStep(x, 2, labels);
  const jftCkpt = join(dir, 'jft.ckpt');
  await jft.save(jftCkpt, { weightsOnly: true });
  return { lp, jft, lpCkpt, jftCkpt, x, feats, d };
}

test('headWeights: the head as trained, equal to what PyTorch reads from the saved file', async () => {
  requireModel();
  const dir = tempDir();
  const c = await checkpoints(dir);
  try {
    for (const [clf, ckpt] of [
      [c.lp, c.lpCkpt],
      [c.jft, c.jftCkpt],
    ] as const) {
      const { weight, bias } = await clf.headWeights();
      assert.is(weight.length, 5 * c.d);
      assert.is(bias.length, 5);
      const ref = py(
        ckpt,
        'p = m.params._c\nout["w"] = p.getattr("head.weight").flatten().tolist()\nout["b"] = p.getattr("head.bias").tolist()',
      );
      // float32 → Python float (double) → float32 is exact
      assert.equal(Array.from(weight), Array.from(Float32Array.from(ref['w'] as number[])));
      assert.equal(Array.from(bias), Array.from(Float32Array.from(ref['b'] as number[])));
      // predict() is sigmoid(features · Wᵀ + b) with exactly these
      if (clf === c.lp) {
        const p = await clf.predict(c.feats, 2);
        for (let i = 0; i < 2; i++)
          for (let k = 0; k < 5; k++) {
            let z = bias[k]!;
            for (let j = 0; j < c.d; j++) z += c.feats[i * c.d + j]! * weight[k * c.d + j]!;
            assert.ok(Math.abs(1 / (1 + Math.exp(-z)) - p[i * 5 + k]!) < 1e-6);
          }
      }
    }
    // a copy: training on changes the head, not what was returned
    const before = await c.lp.headWeights();
    const kept = Array.from(before.bias);
    await c.lp.trainStep(c.feats, 2, new Float32Array(10).fill(1));
    assert.equal(Array.from(before.bias), kept);
    assert.not.equal(Array.from((await c.lp.headWeights()).bias), kept);
  } finally {
    await c.lp.dispose();
    await c.jft.dispose();
  }
});

test('the kind is recorded in the checkpoint and read back (Python sees it too)', async () => {
  requireModel();
  const dir = tempDir();
  const c = await checkpoints(dir);
  await c.lp.dispose();
  await c.jft.dispose();
  const lp = await Classifier.readHeader(c.lpCkpt);
  assert.equal(
    {
      kind: lp.kind,
      recorded: lp.kindRecorded,
      headOnly: lp.headOnly,
      inputDim: lp.inputDim,
      numLabels: lp.numLabels,
    },
    { kind: 'linear-probe', recorded: true, headOnly: true, inputDim: c.d, numLabels: 5 },
  );
  const jft = await Classifier.readHeader(c.jftCkpt);
  assert.equal([jft.kind, jft.kindRecorded, jft.headOnly], ['finetune', true, false]);
  assert.equal(py(c.lpCkpt, 'out["kind"] = m._c.getattr("kind")'), { kind: 'linear-probe' });
  // a frozen image tower with a head is a linear probe too
  const frozen = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', freezeEncoder: true });
  const frozenCkpt = join(dir, 'frozen.ckpt');
  await frozen.save(frozenCkpt, { weightsOnly: true });
  await frozen.dispose();
  assert.is((await Classifier.readHeader(frozenCkpt)).kind, 'linear-probe');
});

test('a checkpoint written before the kind was recorded: the kind follows what the file holds', async () => {
  requireModel();
  // fixtures/lp-before-kind.ckpt: a head over 64 features, saved by the addon before it wrote "kind"
  const old = join(ROOT, 'test', 'model', 'fixtures', 'lp-before-kind.ckpt');
  assert.equal(py(old, 'out["has"] = m._c.hasattr("kind")'), { has: false });
  const h = await Classifier.readHeader(old);
  assert.equal([h.kind, h.kindRecorded, h.headOnly, h.inputDim], ['linear-probe', false, true, 64]);
  const m = await openModel({ modelDir: MODEL_DIR, checkpoint: old, device: 'cpu' });
  assert.is(m.kind, 'linear-probe');
  await m.dispose();
  // the same header with the image tower's fields set: trained tower → finetune, frozen tower → linear-probe
  const dir = tempDir();
  for (const [frozen, want] of [
    [false, 'finetune'],
    [true, 'linear-probe'],
  ] as const) {
    const f = join(dir, `tower-${frozen}.ckpt`);
    const code = `m._c.setattr("headOnly", False)\nm._c.setattr("freezeEncoder", ${frozen ? 'True' : 'False'})\nm.save(sys.argv[2])`;
    const r = spawnSync(
      python(),
      ['-c', `import sys, torch\nm = torch.jit.load(sys.argv[1])\n${code}`, old, f],
      {
        encoding: 'utf8',
      },
    );
    assert.is(r.status, 0, r.stderr);
    const t = await Classifier.readHeader(f);
    assert.equal([t.kind, t.kindRecorded, t.headOnly], [want, false, false]);
  }
});

test('a recorded kind that disagrees with what the file holds is refused, naming both', async () => {
  requireModel();
  const dir = tempDir();
  const c = await checkpoints(dir);
  await c.lp.dispose();
  await c.jft.dispose();
  const f = join(dir, 'lp-says-finetune.ckpt');
  const r = spawnSync(
    python(),
    [
      '-c',
      'import sys, torch\nm = torch.jit.load(sys.argv[1])\nm._c.setattr("kind", "finetune")\nm.save(sys.argv[2])',
      c.lpCkpt,
      f,
    ],
    { encoding: 'utf8' },
  );
  assert.is(r.status, 0, r.stderr);
  await Classifier.readHeader(f).then(
    () => assert.unreachable('a head-only file recording finetune was accepted'),
    (e: Error) => assert.match(e.message, /records kind 'finetune' but holds a linear-probe classifier/),
  );
});

test('openModel: each kind from its checkpoint; predictions and attributions as the parts give them', async () => {
  requireModel();
  const dir = tempDir();
  const c = await checkpoints(dir);
  const x = c.x;
  try {
    // linear probe: the image tower's embedding through the saved head
    const lp = await openModel({ modelDir: MODEL_DIR, checkpoint: c.lpCkpt, device: 'cpu' });
    assert.is(lp.kind, 'linear-probe');
    assert.equal(Array.from(await lp.predict(x, 2)), Array.from(await c.lp.predict(c.feats, 2)));
    assert.equal(
      Array.from(await lp.predictFeatures!(c.feats, 2)),
      Array.from(await c.lp.predict(c.feats, 2)),
    );
    const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
    const { weight, bias } = await c.lp.headWeights();
    const want = await clip.attributeLinear(x, 2, weight.subarray(2 * c.d, 3 * c.d), bias[2]!, {
      method: 'gradient',
    });
    const got = await lp.attribute(x, 2, 2, { method: 'gradient' });
    assert.equal(Array.from(got.map), Array.from(want.map));
    assert.match(lp.describe(1), /logit of Cardiomegaly \(linear-probe classifier .*lp\.ckpt\)/);
    await lp.dispose();
    // fine-tuned: the classifier itself
    const jft = await openModel({ modelDir: MODEL_DIR, checkpoint: c.jftCkpt, device: 'cpu' });
    assert.is(jft.kind, 'finetune');
    assert.is(jft.predictFeatures, undefined);
    assert.equal(Array.from(await jft.predict(x, 2)), Array.from(await c.jft.predict(x, 2)));
    const ja = await jft.attribute(x, 2, 0, { method: 'gradient' });
    assert.equal(
      Array.from(ja.map),
      Array.from((await c.jft.attribute(x, 2, 0, { method: 'gradient' })).map),
    );
    await jft.dispose();
    // zero-shot: the default prompts, one finding's pair explained
    const zs = await openModel({ modelDir: MODEL_DIR, device: 'cpu' });
    assert.is(zs.kind, 'zeroshot');
    const pair = promptPair(findingPrompts(DEFAULT_PROMPT, DEFAULT_NEGATIVE_PROMPT), 3);
    assert.equal(pair, ['a chest X-ray showing edema', 'a chest X-ray showing no edema']);
    const text = await clip.encodeText(loadTokenizer(MODEL_DIR).encode(pair), 2);
    const za = await zs.attribute(x, 2, 3, { method: 'gradient' });
    assert.equal(
      Array.from(za.map),
      Array.from((await clip.attribute(x, 2, text, { method: 'gradient' })).map),
    );
    assert.is(
      zs.describe(3),
      'zero-shot logit s·(cos(img, "a chest X-ray showing edema") − cos(img, "a chest X-ray showing no edema"))',
    );
    await zs.dispose();
    await clip.dispose();
    // a kind the caller expects is checked against the recorded one, never used in its place
    await openModel({ modelDir: MODEL_DIR, checkpoint: c.lpCkpt, kind: 'finetune', device: 'cpu' }).then(
      () => assert.unreachable(),
      (e: Error) => assert.match(e.message, /lp\.ckpt holds a linear-probe model, not finetune/),
    );
    await openModel({ modelDir: MODEL_DIR, kind: 'linear-probe', device: 'cpu' }).then(
      () => assert.unreachable(),
      (e: Error) => assert.match(e.message, /a linear-probe model needs a checkpoint/),
    );
    // a file that is not a classifier checkpoint is refused, naming it
    await openModel({ modelDir: MODEL_DIR, checkpoint: join(MODEL_DIR, 'model.json'), device: 'cpu' }).then(
      () => assert.unreachable(),
      (e: Error) => assert.match(e.message, /model\.json/),
    );
    assert.ok(readFileSync(c.lpCkpt).length > 0);
  } finally {
    await c.lp.dispose();
    await c.jft.dispose();
  }
});

test('openModel bf16: the zero-shot and linear-probe towers run under bf16 autocast, as the parts do', async () => {
  requireModel();
  const dir = tempDir();
  const c = await checkpoints(dir);
  const clip = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    const f16 = await clip.encodeImage(c.x, 2, { bf16: true });
    const lp = await openModel({ modelDir: MODEL_DIR, checkpoint: c.lpCkpt, device: 'cpu', bf16: true });
    assert.equal(Array.from(await lp.embed!(c.x, 2)), Array.from(f16));
    assert.equal(Array.from(await lp.predict(c.x, 2)), Array.from(await c.lp.predict(f16, 2)));
    await lp.dispose();
    const zs = await openModel({ modelDir: MODEL_DIR, device: 'cpu', bf16: true });
    assert.equal(Array.from(await zs.embed!(c.x, 2)), Array.from(f16));
    assert.equal(Array.from(await zs.predict(c.x, 2)), Array.from(await zs.predictFeatures!(f16, 2)));
    await zs.dispose();
    // bf16 is really on here, or the test shows nothing: its features differ from float32's
    if (diagnostics().cpu.bf16) assert.not.equal(Array.from(f16), Array.from(c.feats));
  } finally {
    await clip.dispose();
    await c.lp.dispose();
    await c.jft.dispose();
  }
});

test('openModel: calls made before dispose() complete with their results; later ones reject (zero-shot, head-only LP)', async () => {
  requireModel();
  const dir = tempDir();
  const c = await checkpoints(dir);
  const x = c.x;
  const gradient = { method: 'gradient' as const };
  try {
    // what the calls must give, from models nobody disposes meanwhile
    const ref = await openModel({ modelDir: MODEL_DIR, device: 'cpu' });
    const zsP = await ref.predict(x, 2);
    const zsA = await ref.attribute(x, 2, 2, gradient);
    await ref.dispose();
    const lpRef = await openModel({ modelDir: MODEL_DIR, checkpoint: c.lpCkpt, device: 'cpu' });
    const lpA = await lpRef.attribute(x, 2, 2, gradient);
    await lpRef.dispose();
    const lpP = await c.lp.predict(c.feats, 2);

    // zero-shot: the logit scale and the finding's prompts are needed after the tower's op
    const zs = await openModel({ modelDir: MODEL_DIR, device: 'cpu' });
    const p = zs.predict(x, 2);
    const a = zs.attribute(x, 2, 2, gradient); // finding 2's prompts are encoded after dispose() was called
    const freed = zs.dispose();
    assert.equal(Array.from(await p), Array.from(zsP));
    assert.equal(Array.from((await a).map), Array.from(zsA.map));
    await freed;
    await zs.predict(x, 2).then(
      () => assert.unreachable(),
      (e: Error) => assert.is(e.message, `the opened zero-shot model of ${MODEL_DIR} is disposed`),
    );

    // head-only linear probe: the head runs after the tower; the tower loaded or still loading
    for (const warm of [true, false]) {
      const lp = await openModel({ modelDir: MODEL_DIR, checkpoint: c.lpCkpt, device: 'cpu' });
      if (warm) await lp.ready!();
      const lpPending = lp.predict(x, 2);
      const lpAttr = lp.attribute(x, 2, 2, gradient);
      const gone = lp.dispose();
      assert.equal(Array.from(await lpPending), Array.from(lpP), `warm ${warm}`);
      assert.equal(Array.from((await lpAttr).map), Array.from(lpA.map), `warm ${warm}`);
      await gone;
      for (const late of [() => lp.predict(x, 2), () => lp.attribute(x, 2, 0), () => lp.ready!()])
        await late().then(
          () => assert.unreachable(),
          (e: Error) => assert.is(e.message, `the opened model of ${c.lpCkpt} is disposed`),
        );
    }
  } finally {
    await c.lp.dispose();
    await c.jft.dispose();
  }
});

test('openModel: a finding that is not an integer in [0,5) is a RangeError for attribute and describe, whatever the kind', async () => {
  requireModel();
  const dir = tempDir();
  const c = await checkpoints(dir);
  try {
    const x = c.x;
    const message = (k: number) => `finding must be an integer in [0,5), got ${k}`;
    const lp = await openModel({ modelDir: MODEL_DIR, checkpoint: c.lpCkpt, device: 'cpu' });
    const jft = await openModel({ modelDir: MODEL_DIR, checkpoint: c.jftCkpt, device: 'cpu' });
    const zs = await openModel({ modelDir: MODEL_DIR, device: 'cpu' });
    for (const k of [1.5, -1, 5]) {
      // it used to read bias[1.5] (undefined) and fail as "bias must be finite, got undefined"
      await lp.attribute(x, 1, k).then(
        () => assert.unreachable(),
        (e: Error) => assert.ok(e instanceof RangeError && e.message === message(k), e.message),
      );
      for (const m of [lp, jft, zs])
        assert.throws(
          () => m.describe(k),
          (e: Error) => e instanceof RangeError && e.message === message(k),
          `${m.kind} describe(${k})`,
        );
    }
    await Promise.all([lp.dispose(), jft.dispose(), zs.dispose()]);
  } finally {
    await c.lp.dispose();
    await c.jft.dispose();
  }
});

test('a prompt template without {finding} is refused by openModel and MaskingPredictor, as by the run config', async () => {
  await openModel({ modelDir: MODEL_DIR, device: 'cpu', prompt: 'a chest X-ray showing {findings}' }).then(
    () => assert.unreachable(),
    (e: Error) =>
      assert.ok(
        e instanceof RangeError &&
          e.message ===
            `openModel option 'prompt': prompt must contain {finding}, got "a chest X-ray showing {findings}"`,
        e.message,
      ),
  );
  await openModel({ modelDir: MODEL_DIR, device: 'cpu', negativePrompt: 'no finding' }).then(
    () => assert.unreachable(),
    (e: Error) =>
      assert.is(
        e.message,
        `openModel option 'negativePrompt': negativePrompt must contain {finding}, got "no finding"`,
      ),
  );
  await MaskingPredictor.load({ modelDir: MODEL_DIR, device: 'cpu', prompt: 'no slot' }).then(
    () => assert.unreachable(),
    (e: Error) =>
      assert.is(
        e.message,
        `MaskingPredictor.load option 'prompt': prompt must contain {finding}, got "no slot"`,
      ),
  );
  assert.throws(
    () => parseConfig({ data: { cache: 'c' }, zeroshot: { prompt: 'no slot' } }),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message.includes('zeroshot.prompt: must contain {finding}, got "no slot"'),
  );
});

test("a run's cell over a model folder whose weights changed since the run recorded it: openModel and MaskingPredictor.load refuse it, naming what changed", async () => {
  requireModel();
  const dir = tempDir();
  const modelDir = join(dir, 'model-a');
  cpSync(MODEL_DIR, modelDir, { recursive: true });
  const run = join(dir, 'runs', 'R');
  const cell = join(run, 'cells', 'lp-original-s0');
  mkdirSync(cell, { recursive: true });
  const c = await checkpoints(dir);
  await c.lp.dispose();
  await c.jft.dispose();
  const ckpt = join(cell, 'best.ckpt');
  cpSync(c.lpCkpt, ckpt);
  writeFileSync(join(run, 'config.json'), JSON.stringify({ model: { dir: modelDir } }));
  writeFileSync(
    join(run, RUN_DATA_FILE),
    JSON.stringify({
      fingerprint: { cacheDir: null },
      recordedAt: '2026-12-05T10:00:00Z',
      summaries: {},
      model: runModel(modelDir),
    }),
  );
  const open = () => openModel({ modelDir, checkpoint: ckpt, device: 'cpu' });
  const load = () => MaskingPredictor.load({ modelDir, checkpoint: ckpt, device: 'cpu' });
  const weights = join(modelDir, 'clip.pt');
  utimesSync(weights, 1e9, 1e9); // a whole second, so that it can be put back exactly below
  await (await open()).dispose(); // the model the run recorded (its hash now remembered)
  await (await load()).dispose();
  const refused = async () => {
    for (const [name, f] of [
      ['openModel', open],
      ['MaskingPredictor.load', load],
    ] as const) {
      await f().then(
        async (m) => {
          await m.dispose();
          assert.unreachable(`${name} served the cell on another encoder`);
        },
        (e: Error) => {
          assert.instance(e, ConfigError, `${name}: ${e.message}`);
          assert.match(
            e.message,
            new RegExp(
              `^cannot use ${ckpt} of run ${run}: the model folder ${modelDir} \\(config\\.json model\\.dir\\) is not the model this run started with: the weights file changed; .*recorded 2026-12-05T10:00:00Z in data\\.json`,
            ),
          );
        },
      );
    }
  };
  // other bytes copied in place as `cp -p` does: same inode, same size, the old mtime; only the ctime
  // tells, so the hash remembered for the old file must not be used (the check comes before the load)
  const original = readFileSync(weights);
  const before = statSync(weights);
  const other = Buffer.from(original);
  other[other.length >> 1]! ^= 0xff;
  writeFileSync(weights, other);
  utimesSync(weights, 1e9, 1e9);
  const after = statSync(weights);
  assert.equal([after.ino, after.size, after.mtimeMs], [before.ino, before.size, before.mtimeMs]);
  await refused();
  writeFileSync(weights, original);
  await (await open()).dispose(); // the recorded bytes again
  // the folder re-exported with other weights (one parameter moved), a valid model all the same
  const script =
    'import sys, torch\nm = torch.jit.load(sys.argv[1])\nwith torch.no_grad():\n  next(m.parameters()).add_(0.01)\ntorch.jit.save(m, sys.argv[1])';
  const r = spawnSync(python(), ['-c', script, weights], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  await refused();
  // the same head outside a run is not checked: nothing recorded what it was trained on
  await (await openModel({ modelDir, checkpoint: c.lpCkpt, device: 'cpu' })).dispose();
});

test.run();
