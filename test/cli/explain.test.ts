/** `cxrmask explain`: PNG + JSON for an image with its CheXmask row; bad input named. */
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { preprocess } from '../../ts/images/preprocess.js';
import { Classifier } from '../../ts/model/classifier.js';
import { openModel } from '../../ts/model/open.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { tempDir } from '../data/helpers.js';
import { MODEL_DIR, requireModel } from '../native/helpers.js';
import { runCli } from './helpers.js';

test('explain writes the three-panel PNG and the numbers (zero-shot, IG, original and masked input)', async () => {
  requireModel();
  const syn = await synthesize({ out: tempDir(), n: 10, seed: 3, width: 160, height: 192 });
  const im = syn.images.find((i) => i.chexmask === 'ok')!;
  const out = join(tempDir(), 'ex.png');
  const r = runCli([
    'explain',
    '--image',
    join(syn.mimicRoot, im.path),
    '--chexmask',
    syn.chexmaskCsv,
    '--id',
    im.dicomId,
    '--model',
    MODEL_DIR,
    '--finding',
    'edema',
    '--method',
    'ig',
    '--steps',
    '4',
    '--device',
    'cpu',
    '--out',
    out,
  ]);
  assert.is(r.code, 0, r.err);
  const meta = await sharp(out).metadata();
  assert.is(meta.height, 224 + 26);
  assert.ok(meta.width! > 3 * 224, `width ${meta.width}`);
  const j = JSON.parse(readFileSync(out.replace(/\.png$/, '.json'), 'utf8'));
  assert.is(j.finding, 'Edema');
  assert.equal(
    j.inputs.map((i: { input: string }) => i.input),
    ['original', 'masked'],
  );
  for (const i of j.inputs) {
    assert.ok(i.massInLungsHeart > 0 && i.massInLungsHeart < 1);
    assert.type(i.baselineScore, 'number');
  }
  assert.ok(j.anatomyShare > 0.1 && j.anatomyShare < 0.9);
  // A linear-probe cell checkpoint (head over the embedding) is recognised and explained.
  const lp = await Classifier.create({ inputDim: 64, device: 'cpu', seed: 2 });
  const ckpt = join(tempDir(), 'lp.ckpt');
  await lp.save(ckpt, { weightsOnly: true });
  await lp.dispose();
  const rl = runCli([
    'explain',
    '--image',
    join(syn.mimicRoot, im.path),
    '--model',
    MODEL_DIR,
    '--checkpoint',
    ckpt,
    '--finding',
    'Cardiomegaly',
    '--method',
    'gradient',
    '--device',
    'cpu',
    '--out',
    out,
  ]);
  assert.is(rl.code, 0, rl.err);
  const jl = JSON.parse(readFileSync(out.replace(/\.png$/, '.json'), 'utf8'));
  assert.match(jl.explained, /linear-probe classifier/);
  assert.is(jl.inputs.length, 1);
  assert.is(jl.inputs[0].massInLungsHeart, null);
  // Unknown finding and a lone --id are refused with a message naming the option.
  const bad = runCli([
    'explain',
    '--image',
    join(syn.mimicRoot, im.path),
    '--model',
    MODEL_DIR,
    '--finding',
    'fracture',
    '--out',
    out,
  ]);
  assert.is.not(bad.code, 0);
  assert.match(bad.err, /--finding must be one of Atelectasis/);
  const lone = runCli([
    'explain',
    '--image',
    join(syn.mimicRoot, im.path),
    '--id',
    'x',
    '--model',
    MODEL_DIR,
    '--finding',
    '0',
    '--out',
    out,
  ]);
  assert.match(lone.err, /--chexmask and --id go together/);
});

test("explain preprocesses with the model's model.json size, mean and std, as predict does", async () => {
  requireModel();
  const syn = await synthesize({ out: tempDir(), n: 4, seed: 5, width: 160, height: 192 });
  const image = join(syn.mimicRoot, syn.images[0]!.path);
  // an export with its own normalisation (export --checkpoint takes it from preprocess_cfg)
  const model = join(tempDir(), 'tiny-std');
  cpSync(MODEL_DIR, model, { recursive: true });
  const meta = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8'));
  writeFileSync(
    join(model, 'model.json'),
    JSON.stringify({ ...meta, mean: [0.5, 0.5, 0.5], std: [0.1, 0.1, 0.1] }),
  );
  const out = join(tempDir(), 'ex.png');
  const r = runCli(
    ['explain', '--image', image, '--model', model, '--finding', 'Edema', '--method', 'gradient'].concat([
      '--device',
      'cpu',
      '--out',
      out,
    ]),
  );
  assert.is(r.code, 0, r.err);
  const score = JSON.parse(readFileSync(out.replace(/\.png$/, '.json'), 'utf8')).inputs[0].score;
  // the score of the input the model scores (predict's path: preprocessFor(model.json))
  const scoreWith = async (pre: Record<string, unknown>) => {
    const pp = await preprocess(image, null, { preprocess: pre });
    const m = await openModel({ modelDir: model, device: 'cpu' });
    try {
      return (await m.attribute(pp.original, 1, 3, { method: 'gradient' })).score[0];
    } finally {
      await m.dispose();
    }
  };
  assert.is(
    score,
    await scoreWith({ preset: 'biomedclip', size: 224, mean: [0.5, 0.5, 0.5], std: [0.1, 0.1, 0.1] }),
  );
  // and not that of the preset's CLIP statistics (what explain used to give)
  assert.is.not(score, await scoreWith({ preset: 'biomedclip' }));
});

test('explain --steps/--samples above their ceiling (or not a count) are usage errors, before any work', () => {
  const base = ['explain', '--image', join(tempDir(), 'absent.jpg'), '--model', join(tempDir(), 'no-model')];
  const cases: [string[], RegExp][] = [
    [['--steps', '1e9'], /--steps 1000000000: expected an integer from 1 to 1024/],
    [['--samples', '1025', '--method', 'smoothgrad'], /--samples 1025: expected an integer from 1 to 1024/],
    [['--steps', '0'], /--steps 0: expected an integer from 1 to 1024/],
    [['--samples', '2.5'], /--samples 2.5: expected an integer from 1 to 1024/],
  ];
  for (const [flags, re] of cases) {
    const r = runCli([...base, '--finding', 'Edema', '--out', join(tempDir(), 'ex.png'), ...flags]);
    assert.is(r.code, 2, `${flags.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.not.match(r.err, /absent\.jpg|no-model/, 'refused before the image or the model is read');
  }
});

test('explain refuses an --out that is not a .png and a --json that is --out, before any work; a default JSON path in the way too', () => {
  const dir = tempDir();
  const base = ['explain', '--image', join(dir, 'absent.jpg'), '--model', join(dir, 'no-model')];
  base.push('--finding', 'Edema');
  const png = join(dir, 'h.png');
  writeFileSync(join(dir, 'keep.png'), 'an earlier heat map');
  symlinkSync(join(dir, 'keep.png'), join(dir, 'keep-link.json'));
  mkdirSync(join(dir, 'taken.json'));
  const cases: [string[], RegExp][] = [
    [
      ['--out', join(dir, 'h.json')],
      /--out .*h\.json: the heat map is written as a PNG; give a path ending in \.png/,
    ],
    [['--out', join(dir, 'h')], /--out .*h: the heat map is written as a PNG/],
    [
      ['--out', png, '--json', png],
      /--out .*h\.png and --json .*h\.png name the same file: the numbers would replace the PNG/,
    ],
    // the same file by another spelling, or through a link
    [['--out', png, '--json', join(dir, '.', 'x', '..', 'h.png')], /name the same file/],
    [['--out', join(dir, 'keep.png'), '--json', join(dir, 'keep-link.json')], /name the same file/],
    // the default JSON path (<out>.json) is a folder: refused before the attribution, not after the PNG
    [['--out', join(dir, 'taken.png')], /--json .*taken\.json: is a folder/],
  ];
  for (const [flags, re] of cases) {
    const r = runCli([...base, ...flags]);
    assert.is(r.code, 2, `${flags.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.not.match(r.err, /absent\.jpg|no-model/, 'refused before the image or the model is read');
  }
  assert.is(readFileSync(join(dir, 'keep.png'), 'utf8'), 'an earlier heat map');
  assert.not.ok(existsSync(join(dir, 'taken.png')));
});

test('explain writes the PNG and the JSON as a pair: when the numbers cannot be written, the earlier heat map stays', async () => {
  requireModel();
  const syn = await synthesize({ out: tempDir(), n: 2, seed: 4, width: 128, height: 160 });
  const dir = tempDir();
  const out = join(dir, 'e.png');
  writeFileSync(out, 'an earlier heat map');
  // the numbers' folder is a file: the JSON write fails after the attribution
  writeFileSync(join(dir, 'plain'), 'a file');
  const json = join(dir, 'plain', 'e.json');
  const args = ['explain', '--image', join(syn.mimicRoot, syn.images[0]!.path), '--model', MODEL_DIR];
  args.push('--finding', 'Edema', '--method', 'gradient', '--device', 'cpu', '--out', out, '--json', json);
  const r = runCli(args);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /plain\/e\.json: cannot write/);
  assert.is(readFileSync(out, 'utf8'), 'an earlier heat map', 'the PNG was replaced without its numbers');
  assert.equal(readdirSync(dir).sort(), ['e.png', 'plain']);
});

test.run();
