/**
 * Classifier.readHeader reads a checkpoint's fields without its tensors: openModel reads it before the
 * load, and a fine-tuned BiomedCLIP checkpoint with its optimizer state is ~1 GB. The proof: the same
 * file with every tensor record taken out gives the same header (and no longer loads).
 */
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError, type NativeError } from '../../ts/common/errors.js';
import { Classifier } from '../../ts/model/classifier.js';
import { tempDir } from '../data/helpers.js';
import { python } from '../explain/helpers.js';
import { MODEL_DIR, requireModel } from '../native/helpers.js';

const S = 224;

/** Copies the zip `src` to `dst` without the entries whose names match `drop` (a Python regex). */
function copyZipWithout(src: string, dst: string, drop: string): number {
  const script = [
    'import re, sys, zipfile',
    'src, dst, drop = sys.argv[1:4]',
    'kept = 0',
    'with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:',
    '    for info in zin.infolist():',
    '        if re.search(drop, info.filename): continue',
    '        zout.writestr(info, zin.read(info.filename)); kept += 1',
    'print(kept)',
  ].join('\n');
  const r = spawnSync(python(), ['-c', script, src, dst, drop], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return Number(r.stdout.trim());
}

test('the header of a fine-tuned checkpoint is read without its tensors', async () => {
  requireModel();
  const dir = tempDir();
  const c = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 0 });
  const full = join(dir, 'full.ckpt');
  try {
    const x = Float32Array.from({ length: 2 * 3 * S * S }, (_, i) => Math.sin(0.37 * i));
    await c.trainStep(x, 2, new Float32Array(10).fill(1));
    await c.trainStep(x, 2, new Float32Array(10).fill(0));
    await c.save(full);
  } finally {
    await c.dispose();
  }
  const headerOf = await Classifier.readHeader(full);
  assert.equal(
    [headerOf.kind, headerOf.kindRecorded, headerOf.step, headerOf.weightsOnly, headerOf.numLabels],
    ['finetune', true, 2, false, 5],
  );

  // the same fields as PyTorch reads them from the whole file
  const script = [
    'import json, sys, torch',
    'm = torch.jit.load(sys.argv[1])',
    'keys = ["format", "headOnly", "freezeEncoder", "inputDim", "numLabels", "step", "weightsOnly", "kind"]',
    'print(json.dumps({k: m._c.getattr(k) for k in keys}))',
  ].join('\n');
  const r = spawnSync(python(), ['-c', script, full], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const torchSays = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(
    {
      format: headerOf.format,
      headOnly: headerOf.headOnly,
      freezeEncoder: headerOf.freezeEncoder,
      inputDim: headerOf.inputDim,
      numLabels: headerOf.numLabels,
      step: headerOf.step,
      weightsOnly: headerOf.weightsOnly,
      kind: headerOf.kind,
    },
    torchSays,
  );

  const bare = join(dir, 'no-tensors.ckpt');
  const kept = copyZipWithout(full, bare, String.raw`/data/\d+$`);
  assert.ok(kept >= 2, `kept ${kept} entries`);
  assert.ok(statSync(bare).size * 20 < statSync(full).size, 'the tensor records were not taken out');
  assert.equal(await Classifier.readHeader(bare), headerOf);
  // a full read needs the records the header read did without
  const other = await Classifier.create({ modelDir: MODEL_DIR, device: 'cpu', seed: 0 });
  try {
    await other.load(bare).then(
      () => assert.unreachable('a checkpoint without its tensors loaded'),
      (e: Error) => assert.match(e.message, /no-tensors\.ckpt/),
    );
  } finally {
    await other.dispose();
  }
});

test('a file that is not a checkpoint, or lacks a field, is refused naming the file', async () => {
  const dir = tempDir();
  const text = join(dir, 'notes.ckpt');
  writeFileSync(text, 'not a zip archive\n');
  await Classifier.readHeader(text).then(
    () => assert.unreachable('a text file was read as a checkpoint'),
    (e: NativeError) => {
      // the file's fault (ERR_INVALID_ARG), said in words, not miniz's "failed finding central directory"
      assert.match(
        e.message,
        /cannot read classifier state .*notes\.ckpt: not a checkpoint: not the zip archive torch\.save writes$/,
      );
      assert.is(e.code, 'ERR_INVALID_ARG');
    },
  );
  await Classifier.readHeader(join(dir, 'gone.ckpt')).then(
    () => assert.unreachable('a missing file was read'),
    (e: DataError) => {
      assert.instance(e, DataError);
      assert.is(e.reason, 'missing-file');
      assert.match(e.message, /gone\.ckpt: no such checkpoint file/);
    },
  );
  const head = await Classifier.create({ inputDim: 8, device: 'cpu' });
  const ckpt = join(dir, 'head.ckpt');
  await head.save(ckpt, { weightsOnly: true });
  await head.dispose();
  assert.equal((await Classifier.readHeader(ckpt)).kind, 'linear-probe');
  // the same file with its pickled header replaced by an empty module's: no fields at all
  const empty = join(dir, 'empty.ckpt');
  const r = spawnSync(
    python(),
    ['-c', 'import sys, torch\ntorch.jit.save(torch.jit.script(torch.nn.Module()), sys.argv[1])', empty],
    { encoding: 'utf8' },
  );
  assert.is(r.status, 0, r.stderr);
  await Classifier.readHeader(empty).then(
    () => assert.unreachable('a module without the header fields was accepted'),
    (e: Error) => assert.match(e.message, /empty\.ckpt is not a classifier checkpoint \(no format field\)/),
  );
});

test('a file holding quantized tensors is refused, not half read (their rebuild needs the bytes)', async () => {
  const dir = tempDir();
  const script = join(dir, 'quantized.py');
  writeFileSync(
    script,
    [
      'import sys, torch',
      'class M(torch.nn.Module):',
      '    def __init__(self):',
      '        super().__init__()',
      '        self.format = 1',
      '        s = torch.rand(4, dtype=torch.double) + 0.1',
      '        self.q = torch.quantize_per_channel(torch.randn(4, 3), s, torch.zeros(4, dtype=torch.long), 0, torch.qint8)',
      '    def forward(self, x: int) -> int:',
      '        return x + self.format',
      'torch.jit.script(M()).save(sys.argv[1])',
    ].join('\n'),
  );
  const f = join(dir, 'quantized.ckpt');
  const r = spawnSync(python(), [script, f], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  await Classifier.readHeader(f).then(
    () => assert.unreachable('a quantized file was read'),
    (e: Error) => assert.match(e.message, /cannot read classifier state .*quantized\.ckpt: .*quantized/),
  );
});

test.run();
