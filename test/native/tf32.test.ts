/**
 * setTf32: one process-wide switch for TF32 in float32 CUDA convolutions (cuDNN) and matmuls (cuBLAS),
 * reported by diagnostics().cuda.tf32. The flags live in ATen's global context, so they read back the
 * same on a machine without a GPU. The GPU check's parity section turns TF32 off with it.
 */
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTf32 } from '../../ts/index.js';
import { diagnostics } from '../../ts/native.js';
import { ROOT } from './helpers.js';

test("torch's defaults until setTf32 is called: cuDNN TF32 on, cuBLAS TF32 off", () => {
  // a fresh process: other tests in this one may have switched it already
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      "import('./ts/native.ts').then((n) => console.log(JSON.stringify(n.diagnostics().cuda.tf32)))",
    ],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, TORCH_ALLOW_TF32_CUBLAS_OVERRIDE: '' } },
  );
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!), { cudnn: true, cublas: false });
});

test('setTf32(false) turns both off, setTf32(true) both on', () => {
  setTf32(false);
  assert.equal(diagnostics().cuda.tf32, { cudnn: false, cublas: false });
  setTf32(true);
  assert.equal(diagnostics().cuda.tf32, { cudnn: true, cublas: true });
  setTf32(false);
  assert.equal(diagnostics().cuda.tf32, { cudnn: false, cublas: false });
});

test('setTf32 takes a boolean only', () => {
  for (const bad of ['on', 1, null, undefined]) {
    assert.throws(
      () => setTf32(bad as unknown as boolean),
      (e: Error) => e instanceof TypeError && /boolean/.test(e.message),
    );
  }
});

test.run();
