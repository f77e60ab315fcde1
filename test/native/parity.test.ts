/** Addon vs Python on the same TorchScript file: embeddings and token ids. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipModel } from '../../ts/model/clip.js';
import { diagnostics } from '../../ts/model/diagnostics.js';
import { loadTokenizer } from '../../ts/model/tokenizer.js';
import { MODEL_DIR, maxAbsDiff, readF32, reference } from './helpers.js';

test('diagnostics report torch, cuda, blas, threads and the addon path', () => {
  const d = diagnostics();
  assert.match(d.torch.version, /^\d+\.\d+/);
  assert.type(d.cuda.available, 'boolean');
  assert.ok(d.blas.blas.length > 0);
  assert.ok(d.threads.intraOp >= 1);
  assert.match(d.addonPath, /cxrmask_native\.node$/);
});

test('setThreads is applied to later native work', async () => {
  const { getThreads, setThreads } = await import('../../ts/native.js');
  const before = getThreads();
  const model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    setThreads(1);
    assert.is(diagnostics().threads.requested, 1);
    const ref = reference();
    const out = await model.encodeImage(readF32(ref.images), ref.images.shape[0]!);
    assert.ok(maxAbsDiff(out, readF32(ref.imageEmbeddings)) <= 1e-4);
    assert.throws(() => setThreads(0), /positive integer/);
  } finally {
    setThreads(before);
    model.dispose();
  }
});

test('image and text embeddings equal the Python reference (max abs diff <= 1e-4)', async () => {
  const ref = reference();
  const model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    assert.is(model.device, 'cpu');
    const n = ref.images.shape[0]!;
    const img = await model.encodeImage(readF32(ref.images), n);
    assert.is(img.length, n * model.embedDim);
    const dImg = maxAbsDiff(img, readF32(ref.imageEmbeddings));
    assert.ok(dImg <= 1e-4, `image max abs diff ${dImg}`);

    const tok = loadTokenizer(MODEL_DIR);
    const ids = tok.encode(ref.prompts);
    const txt = await model.encodeText(ids, ref.prompts.length);
    const dTxt = maxAbsDiff(txt, readF32(ref.textEmbeddings));
    assert.ok(dTxt <= 1e-4, `text max abs diff ${dTxt}`);
    assert.ok(Math.abs(model.logitScaleLog - ref.logitScale) < 1e-6);
    assert.ok(Math.abs(model.logitScale - Math.exp(ref.logitScale)) < 1e-4);
  } finally {
    model.dispose();
  }
});

test('TS tokenizer ids equal Python (open_clip HFTokenizer) ids for the reference prompts', () => {
  const ref = reference();
  const tok = loadTokenizer(MODEL_DIR);
  const ids = tok.encode(ref.prompts);
  const L = tok.contextLength;
  assert.is(ids.length, ref.prompts.length * L);
  ref.tokenIds.forEach((row, i) => {
    assert.equal(Array.from(ids.subarray(i * L, (i + 1) * L), Number), row, `prompt ${i}: ${ref.prompts[i]}`);
  });
});

test('bf16 autocast runs where supported and stays close to fp32', async () => {
  const ref = reference();
  const model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  try {
    if (!model.bf16Supported) return;
    const n = ref.images.shape[0]!;
    const a = await model.encodeImage(readF32(ref.images), n);
    const b = await model.encodeImage(readF32(ref.images), n, { bf16: true });
    const scale = Math.max(...Array.from(a, Math.abs));
    assert.ok(maxAbsDiff(a, b) < 0.1 * scale + 0.05, `bf16 diff ${maxAbsDiff(a, b)} (scale ${scale})`);
  } finally {
    model.dispose();
  }
});

test.run();
