/** Segmenter: addon vs Python on the same TorchScript file (logits, loss, AdamW steps), records as
 * training input, exact resume, errors and the async lifecycle. */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pythonExe as python } from '../../bench/common.js';
import { NativeError } from '../../ts/common/errors.js';
import { paintTable } from '../../ts/masks/overlay.js';
import { type RecordBatch, recordsToImages } from '../../ts/model/records.js';
import { Segmenter } from '../../ts/model/segmenter.js';

import { expectReject, MODEL_DIR, maxAbsDiff, ROOT } from './helpers.js';

const SEG_DIR = process.env['CXRMASK_TEST_SEGMENTER'] ?? join(ROOT, 'models', 'seg-tiny');

interface Blob {
  file: string;
  dtype: string;
  shape: number[];
}
interface SegReference {
  images: Blob;
  logits: Blob;
  regionBits: Blob;
  loss: number;
}

function reference(): SegReference {
  if (!existsSync(join(SEG_DIR, 'seg.pt')))
    throw new Error(
      `${SEG_DIR}/seg.pt missing: run \`bash scripts/setup.sh\` (or python tools/segmenter_export.py --random-init unet-tiny --out models/seg-tiny)`,
    );
  return JSON.parse(readFileSync(join(SEG_DIR, 'reference.json'), 'utf8')) as SegReference;
}

function blob(b: Blob): Buffer {
  return readFileSync(join(SEG_DIR, b.file));
}
const f32 = (b: Blob) => {
  const buf = blob(b);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
};
const u8 = (b: Blob) => new Uint8Array(blob(b));

/** Records of the reference region masks: a gray gradient plus fill bits (3-5) and no contour. */
function records(bits: Uint8Array, n: number, s: number): RecordBatch {
  const hw = s * s;
  const rec = new Uint8Array(n * 2 * hw);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < hw; p++) {
      rec[i * 2 * hw + p] = (p * 7 + i * 31) % 256;
      rec[i * 2 * hw + hw + p] = bits[i * hw + p]! << 3;
    }
  }
  return {
    kind: 'records',
    records: rec,
    size: s,
    pixels: {
      mean: [0.48145466, 0.4578275, 0.40821073],
      std: [0.26862954, 0.26130258, 0.27577711],
      paint: paintTable({}),
      original: true,
      masked: false,
    },
  };
}

test('logits equal the Python reference on the same TorchScript file', async () => {
  const ref = reference();
  const seg = await Segmenter.load(SEG_DIR, { device: 'cpu' });
  try {
    const n = ref.images.shape[0]!;
    const out = await seg.logits(f32(ref.images), n);
    assert.is(out.length, n * 3 * seg.size * seg.size);
    const d = maxAbsDiff(out, f32(ref.logits));
    assert.ok(d <= 1e-4, `logits max abs diff ${d}`);
    // Masks are the thresholded logits, bit k for structure k.
    const masks = await seg.predictMasks(f32(ref.images), n);
    const logits = f32(ref.logits);
    const hw = seg.size * seg.size;
    let mismatches = 0;
    for (let i = 0; i < n; i++)
      for (let p = 0; p < hw; p++) {
        let want = 0;
        for (let k = 0; k < 3; k++) if (logits[(i * 3 + k) * hw + p]! > 0) want |= 1 << k;
        if (masks[i * hw + p] !== want) mismatches++;
      }
    // Logits within 1e-4 of 0 may flip; nothing else may.
    assert.ok(mismatches <= 2, `${mismatches} mask pixels differ from the reference logits`);
  } finally {
    await seg.dispose();
  }
});

test('loss and weights after 3 AdamW steps equal Python (seg_loss, torch.optim.AdamW)', async () => {
  const ref = reference();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-seg-'));
  const seg = await Segmenter.load(SEG_DIR, { device: 'cpu', lr: 0.01, weightDecay: 0.05 });
  try {
    const n = ref.images.shape[0]!;
    const x = f32(ref.images);
    const bits = u8(ref.regionBits);
    const losses: number[] = [];
    for (let k = 0; k < 3; k++) losses.push((await seg.trainStep(x, n, bits)).loss);
    assert.ok(Math.abs(losses[0]! - ref.loss) < 1e-5, `first loss ${losses[0]} vs export ${ref.loss}`);
    await seg.save(join(dir, 'after.ckpt'));
    const script = [
      'import sys, json, numpy as np, torch',
      'sys.path.insert(0, sys.argv[1] + "/tools")',
      'from segmenter_export import seg_loss',
      'd, ck = sys.argv[2], sys.argv[3]',
      'ref = json.load(open(d + "/reference.json"))',
      'rd = lambda b, t: torch.from_numpy(np.fromfile(d + "/" + b["file"], dtype=t).reshape(b["shape"]))',
      'x = rd(ref["images"], np.float32); bits = rd(ref["regionBits"], np.uint8).long()',
      'y = torch.stack([(bits >> k) & 1 for k in range(3)], 1).float()',
      'm = torch.jit.load(d + "/seg.pt"); m.train()',
      'opt = torch.optim.AdamW(m.parameters(), lr=0.01, weight_decay=0.05)',
      'losses = []',
      'for _ in range(3):',
      '    opt.zero_grad(); loss = seg_loss(m.segment(x), y); loss.backward(); opt.step(); losses.append(loss.item())',
      'saved = torch.jit.load(ck).params._c',
      'dw = max((p - saved.getattr("net." + k)).abs().max().item() for k, p in m.named_parameters())',
      'print(json.dumps({"losses": losses, "dw": dw}))',
    ].join('\n');
    const py = spawnSync(python(), ['-c', script, ROOT, SEG_DIR, join(dir, 'after.ckpt')], {
      encoding: 'utf8',
    });
    assert.is(py.status, 0, py.stderr);
    const got = JSON.parse(py.stdout.trim()) as { losses: number[]; dw: number };
    for (let k = 0; k < 3; k++)
      assert.ok(
        Math.abs(got.losses[k]! - losses[k]!) < 1e-4,
        `step ${k + 1}: loss ${losses[k]} vs Python ${got.losses[k]}`,
      );
    assert.ok(got.dw <= 1e-4, `weights after 3 steps: max |diff| ${got.dw}`);
    assert.ok(losses[2]! < losses[0]!, `loss did not fall: ${losses.join(', ')}`);
  } finally {
    await seg.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cache records train on their own filled regions (bits 3-5), the same step as images + regionBits', async () => {
  const ref = reference();
  const n = ref.images.shape[0]!;
  const s = ref.images.shape[2]!;
  const bits = u8(ref.regionBits);
  const rec = records(bits, n, s);
  const images = await recordsToImages(rec, n);
  const a = await Segmenter.load(SEG_DIR, { device: 'cpu' });
  const b = await Segmenter.load(SEG_DIR, { device: 'cpu' });
  try {
    const ra = await a.trainStep(rec, n);
    const rb = await b.trainStep(images, n, bits);
    assert.ok(Math.abs(ra.loss - rb.loss) < 1e-6, `records ${ra.loss} vs images ${rb.loss}`);
    assert.ok(maxAbsDiff(await a.logits(rec, n), await b.logits(images, n)) < 1e-5);
    // A masked-variant batch is segmented as the original image.
    const masked = { ...rec, pixels: { ...rec.pixels, original: false, masked: true } };
    assert.is(maxAbsDiff(await a.logits(masked, n), await a.logits(rec, n)), 0);
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

test('save/load resumes exactly: the next step and the logits equal an uninterrupted run', async () => {
  const ref = reference();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-seg-'));
  const n = ref.images.shape[0]!;
  const x = f32(ref.images);
  const bits = u8(ref.regionBits);
  const a = await Segmenter.load(SEG_DIR, { device: 'cpu', lr: 0.01 });
  const b = await Segmenter.load(SEG_DIR, { device: 'cpu', lr: 0.01 });
  try {
    await a.trainStep(x, n, bits);
    await a.trainStep(x, n, bits);
    await a.save(join(dir, 'state.ckpt'));
    await a.save(join(dir, 'weights.ckpt'), { weightsOnly: true });
    const next = await a.trainStep(x, n, bits);
    await b.load(join(dir, 'state.ckpt'));
    assert.is(b.step, 2);
    const resumed = await b.trainStep(x, n, bits);
    assert.is(resumed.step, 3);
    assert.ok(Math.abs(resumed.loss - next.loss) < 1e-7, `${resumed.loss} vs ${next.loss}`);
    assert.ok(maxAbsDiff(await a.logits(x, n), await b.logits(x, n)) < 1e-6);
    // Weights-only: same predictions as the weights it was saved with.
    const c = await Segmenter.load(SEG_DIR, { device: 'cpu' });
    await c.load(join(dir, 'weights.ckpt'));
    const d = await Segmenter.load(SEG_DIR, { device: 'cpu' });
    await d.load(join(dir, 'state.ckpt'));
    assert.is(maxAbsDiff(await c.logits(x, n), await d.logits(x, n)), 0);
    await c.dispose();
    await d.dispose();
  } finally {
    await a.dispose();
    await b.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input: clear errors, NativeError rejections, the model unchanged', async () => {
  const ref = reference();
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-seg-'));
  const seg = await Segmenter.load(SEG_DIR, { device: 'cpu' });
  try {
    const n = ref.images.shape[0]!;
    const x = f32(ref.images);
    assert.throws(() => seg.trainStep(x, n), /regionBits .*required/);
    assert.throws(() => seg.trainStep(x, n, new Uint8Array(5)), /regionBits must hold/);
    assert.throws(() => seg.logits(new Float32Array(3), 1), /x must/);
    const bad = u8(ref.regionBits).slice();
    bad[10] = 9;
    const e = await expectReject(seg.trainStep(x, n, bad), /region bits must be 0\.\.7/);
    assert.ok(e instanceof NativeError);
    assert.is((e as NativeError).code, 'ERR_INVALID_ARG');
    assert.is(seg.step, 0);
    await expectReject(seg.load(join(dir, 'missing.ckpt')), /cannot read segmenter state/);
    await expectReject(Segmenter.load(MODEL_DIR), /not 'segmenter'/);
    await expectReject(Segmenter.load(SEG_DIR, { threshold: 1 }), /threshold must be in/);
    await expectReject(Segmenter.load(SEG_DIR, { lrr: 1 } as never), /lrr/);
  } finally {
    await seg.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('calls queue one at a time; dispose waits for them and later calls throw', async () => {
  const ref = reference();
  const seg = await Segmenter.load(SEG_DIR, { device: 'cpu' });
  const n = ref.images.shape[0]!;
  const x = f32(ref.images);
  const pending = [seg.predictMasks(x, n), seg.trainStep(x, n, u8(ref.regionBits)), seg.logits(x, n)];
  const disposed = seg.dispose();
  assert.throws(() => seg.logits(x, n), /disposed/);
  const [masks, step, logits] = await Promise.all(pending);
  await disposed;
  assert.is((masks as Uint8Array).length, n * seg.size * seg.size);
  assert.is((step as { step: number }).step, 1);
  assert.is((logits as Float32Array).length, n * 3 * seg.size * seg.size);
  assert.ok(seg.disposed);
});

test.run();
