/**
 * openModel's bf16 reaches the image tower of every kind, on any CPU: a stand-in tower records the
 * options its forward and attribution get (test/model/open.test.ts shows the real tower's numbers,
 * which only differ from float32 where the CPU has AVX512-BF16/AMX).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AttributionOptions } from '../../ts/model/attribution.js';
import type { ModelBackend } from '../../ts/model/backend.js';
import { openModel } from '../../ts/model/open.js';
import { fakeBackend } from '../experiment/fake-backend.js';

/** The fake backend, its tower recording each call's options; `calls` lists them in order. */
function recording() {
  const base = fakeBackend();
  const calls: { op: string; bf16: boolean | undefined }[] = [];
  const backend: ModelBackend = {
    ...base,
    // the fake head has no weights to hand out; attribution through it needs some
    createClassifier: async (o) =>
      Object.assign(await base.createClassifier(o), {
        headWeights: async () => ({ weight: new Float32Array(16 * 5), bias: new Float32Array(5) }),
      }),
    loadClip: async (dir, device) => {
      const clip = await base.loadClip(dir, device);
      const encode = clip.encodeImage.bind(clip);
      const map = { map: new Float32Array(1), logit: new Float32Array(1) } as never;
      return Object.assign(clip, {
        encodeImage: (x: Float32Array, n: number, o?: { bf16?: boolean }) => {
          calls.push({ op: 'encodeImage', bf16: o?.bf16 });
          return encode(x, n);
        },
        attribute: async (_x: unknown, _n: number, _t: unknown, o?: AttributionOptions) => {
          calls.push({ op: 'attribute', bf16: o?.bf16 });
          return map;
        },
        attributeLinear: async (_x: unknown, _n: number, _w: unknown, _b: number, o?: AttributionOptions) => {
          calls.push({ op: 'attributeLinear', bf16: o?.bf16 });
          return map;
        },
      });
    },
  };
  return { backend, calls, base };
}

const x = new Float32Array(3 * 8 * 8);

test('zero-shot: bf16 reaches the forward and attribution; an attribution that says bf16: false keeps it', async () => {
  for (const bf16 of [true, false]) {
    const { backend, calls } = recording();
    const m = await openModel({ modelDir: 'unused', backend, ...(bf16 ? { bf16 } : {}) });
    calls.length = 0; // the prompts' encoding at open
    await m.predict(x, 1);
    await m.embed!(x, 1);
    await m.attribute(x, 1, 0, { method: 'gradient' });
    await m.attribute(x, 1, 0, { method: 'gradient', bf16: false });
    const want = bf16 ? true : undefined;
    assert.equal(calls, [
      { op: 'encodeImage', bf16: want },
      { op: 'encodeImage', bf16: want },
      { op: 'attribute', bf16: want },
      { op: 'attribute', bf16: false },
    ]);
    await m.dispose();
  }
});

test('linear probe: bf16 reaches the tower under the head, forward and attribution', async () => {
  const { backend, calls, base } = recording();
  const head = await base.createClassifier({ inputDim: 16, seed: 1 });
  const ckpt = join(mkdtempSync(join(tmpdir(), 'cxrmask-bf16-')), 'lp.ckpt');
  await head.save(ckpt);
  const m = await openModel({ modelDir: 'unused', checkpoint: ckpt, backend, bf16: true });
  assert.is(m.kind, 'linear-probe');
  await m.predict(x, 1);
  await m.attribute(x, 1, 2, { method: 'gradient' });
  assert.equal(calls, [
    { op: 'encodeImage', bf16: true },
    { op: 'attributeLinear', bf16: true },
  ]);
  await m.dispose();
});

test.run();
