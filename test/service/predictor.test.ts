/** MaskingPredictor (inference-time masking library call) against the pure-JS fake backend. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, DataError, NativeError } from '../../ts/common/errors.js';
import { FINDINGS } from '../../ts/common/labels.js';
import type { ModelBackend as Backend, ClassifierLike, ClipLike } from '../../ts/model/backend.js';
import { MaskingPredictor } from '../../ts/service/predictor.js';
import { fakeBackend, fakeCache } from '../experiment/fake-backend.js';
import { MODEL_DIR } from '../native/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-svc-'));
const cache = fakeCache({ n: 20 });
// "images" are cache rows; the fake preprocess returns the cache tensors (3×8×8) for a row id.
const preprocessFn = async (image: string | Uint8Array, chexmask: unknown) => {
  const row = Number(String(image));
  const o = cache.batch([row], 'original') as { x: Float32Array };
  const m = chexmask ? (cache.batch([row], 'masked') as { x: Float32Array }).x : null;
  await new Promise((r) => setTimeout(r, 2));
  return { original: o.x, masked: m };
};

test('zero-shot predictor: original and masked probabilities per finding', async () => {
  const p = await MaskingPredictor.load({ modelDir: 'unused', backend: fakeBackend(), preprocessFn });
  assert.is(p.kind, 'zeroshot');
  const r = await p.predict('3', { any: 'row' });
  assert.equal(Object.keys(r.original), [...FINDINGS]);
  for (const f of FINDINGS) {
    assert.ok(r.original[f] >= 0 && r.original[f] <= 1);
    assert.ok(r.masked![f] >= 0 && r.masked![f] <= 1);
    assert.ok(Math.abs(r.delta![f] - (r.masked![f] - r.original[f])) < 1e-12);
  }
  const noMask = await p.predict('3', null);
  assert.is(noMask.masked, null);
  await p.dispose();
  try {
    await p.predict('3', null);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /disposed/);
  }
});

test('predict takes the bytes of a Buffer at the call: the caller may reuse its buffer at once', async () => {
  const seen: string[] = [];
  // reads the bytes only after a turn of the event loop, as decoding on libuv's pool does
  const reading = async (image: string | Uint8Array, chexmask: unknown) => {
    await new Promise((r) => setTimeout(r, 5));
    seen.push(Buffer.from(image as Uint8Array).toString());
    return preprocessFn('3', chexmask);
  };
  const p = await MaskingPredictor.load({
    modelDir: 'unused',
    backend: fakeBackend(),
    preprocessFn: reading,
  });
  const receive = Buffer.from('image one');
  const first = p.predict(receive, null);
  receive.write('IMAGE TWO'); // a service's receive buffer, refilled by the next request
  const second = p.predict(receive, null);
  receive.fill(0);
  await Promise.all([first, second]);
  assert.equal(seen, ['image one', 'IMAGE TWO']);
  await p.dispose();
});

test('fine-tuned predictor from a checkpoint; concurrent calls are queued, one at a time', async () => {
  const base = fakeBackend();
  const seed = await base.createClassifier({ modelDir: 'm', seed: 3 });
  const ckpt = join(tmp, 'jft-masked-s0', 'best.ckpt');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(tmp, 'jft-masked-s0'));
  await seed.save(ckpt);
  let inFlight = 0;
  let maxInFlight = 0;
  const backend: Backend = {
    ...base,
    createClassifier: async (o) => {
      const c = await base.createClassifier(o);
      const wrapped: ClassifierLike = Object.create(c);
      wrapped.predict = async (x, n) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        const out = await c.predict(x, n);
        inFlight--;
        return out;
      };
      wrapped.load = (path) => c.load(path);
      return wrapped;
    },
  };
  const p = await MaskingPredictor.load({ modelDir: 'm', checkpoint: ckpt, backend, preprocessFn });
  assert.is(p.kind, 'finetune');
  const calls = Array.from({ length: 8 }, (_, i) => p.predict(String(i), i % 2 ? { row: i } : null));
  assert.ok(p.pending > 0);
  const rs = await Promise.all(calls);
  assert.is(maxInFlight, 1, 'serialized');
  assert.is(rs.length, 8);
  assert.ok(rs[1]!.masked !== null && rs[0]!.masked === null);
  // same input → same answer, regardless of the queue
  const again = await p.predict('1', { row: 1 });
  assert.equal(again, rs[1]);
  // a failing call does not break the queue
  let failed = false;
  await p.predict('999', null).catch(() => {
    failed = true;
  });
  assert.ok(failed, 'an unknown image was predicted');
  assert.ok((await p.predict('2', null)).original);
  await p.dispose();
});

test('the kind is the one the checkpoint records, whatever its folder is called; another kind asked for is refused', async () => {
  const base = fakeBackend();
  const { mkdirSync } = await import('node:fs');
  // a fine-tuned model in a folder named like a linear-probe cell, and the other way round
  mkdirSync(join(tmp, 'lp-original-s1'));
  mkdirSync(join(tmp, 'jft-original-s1'));
  const ft = join(tmp, 'lp-original-s1', 'best.ckpt');
  const lp = join(tmp, 'jft-original-s1', 'best.ckpt');
  await (await base.createClassifier({ modelDir: 'm' })).save(ft);
  await (await base.createClassifier({ modelDir: null, inputDim: 16 })).save(lp);
  for (const [ckpt, kind] of [
    [ft, 'finetune'],
    [lp, 'linear-probe'],
  ] as const) {
    const p = await MaskingPredictor.load({ modelDir: 'm', checkpoint: ckpt, backend: base, preprocessFn });
    assert.is(p.kind, kind);
    assert.is((await p.predict('4', null)).kind, kind);
    await p.dispose();
  }
  await MaskingPredictor.load({
    modelDir: 'm',
    checkpoint: ft,
    kind: 'linear-probe',
    backend: base,
    preprocessFn,
  }).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /holds a finetune model, not linear-probe/),
  );
});

test('a load that fails frees the models it made (linear probe: the head, its tower not yet loaded; fine-tuned: the classifier)', async () => {
  const base = fakeBackend();
  // checkpoints that record their kind, as a run writes them
  const ckpts = { 'linear-probe': join(tmp, 'fail-lp.ckpt'), finetune: join(tmp, 'fail-ft.ckpt') };
  await (await base.createClassifier({ modelDir: null, inputDim: 16 })).save(ckpts['linear-probe']);
  await (await base.createClassifier({ modelDir: 'm' })).save(ckpts.finetune);
  const live = new Set<string>();
  let made = 0;
  const backend: Backend = {
    ...base,
    loadClip: async (dir, device) => {
      const c = await base.loadClip(dir, device);
      const id = `clip${made++}`;
      live.add(id);
      const w: ClipLike = Object.create(c);
      w.dispose = () => {
        live.delete(id);
        c.dispose();
      };
      return w;
    },
    createClassifier: async (o) => {
      const c = await base.createClassifier(o);
      const id = `clf${made++}`;
      live.add(id);
      const w: ClassifierLike = Object.create(c);
      w.load = async () => {
        throw new Error('checkpoint unreadable');
      };
      w.dispose = () => {
        live.delete(id);
        c.dispose();
      };
      return w;
    },
  };
  for (const kind of ['linear-probe', 'finetune'] as const) {
    await MaskingPredictor.load({ modelDir: 'm', checkpoint: ckpts[kind], kind, backend, preprocessFn }).then(
      () => assert.unreachable(),
      (e: Error) => assert.match(e.message, /checkpoint unreadable/),
    );
  }
  assert.is(made, 2, 'the head (its tower is loaded on first use), then the fine-tuned classifier');
  assert.equal([...live], [], 'every model made by the failed loads was disposed');
});

test('MaskingPredictor.load refuses an unknown option by name, and checks the ones it knows', async () => {
  const backend = fakeBackend();
  await MaskingPredictor.load({ modelDir: 'm', checkpont: 'x.ckpt', backend, preprocessFn } as never).then(
    () => assert.unreachable(),
    (e: Error) => {
      assert.instance(e, TypeError);
      assert.match(
        e.message,
        /unknown MaskingPredictor.load option 'checkpont' \(known: modelDir, checkpoint,/,
      );
    },
  );
  await MaskingPredictor.load({ modelDir: 'm', device: 'tpu', backend, preprocessFn } as never).then(
    () => assert.unreachable(),
    (e: Error) => {
      assert.instance(e, RangeError);
      assert.match(
        e.message,
        /MaskingPredictor.load option 'device': device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got tpu/,
      );
    },
  );
  await MaskingPredictor.load({ modelDir: 'm', kind: 'lp', backend, preprocessFn } as never).then(
    () => assert.unreachable(),
    (e: Error) =>
      assert.match(e.message, /option 'kind': kind must be one of zeroshot, linear-probe, finetune, got lp/),
  );
});

test('predict refuses unknown or non-boolean extras and a CheXmask argument that is no object, by rejecting', async () => {
  const p = await MaskingPredictor.load({ modelDir: 'unused', backend: fakeBackend(), preprocessFn });
  const cases: [unknown, unknown, RegExp][] = [
    [
      null,
      { overlay: true, maks: true },
      /^unknown MaskingPredictor\.predict option 'maks' \(known: overlay, masks\)$/,
    ],
    [
      null,
      { overlay: 1 },
      /^MaskingPredictor\.predict option 'overlay': overlay must be a boolean, got number$/,
    ],
    [
      null,
      { masks: 'yes' },
      /^MaskingPredictor\.predict option 'masks': masks must be a boolean, got 'yes'$/,
    ],
    [null, null, /^MaskingPredictor\.predict option '\(options\)': .*expected object, received null/],
    // a dicom_id given instead of its row
    ['abc', {}, /^chexmask must be a CheXmask row, a CSV record or region masks, got string$/],
    [42, {}, /^chexmask must be a CheXmask row, a CSV record or region masks, got number$/],
  ];
  for (const [chexmask, extras, message] of cases) {
    let call: Promise<unknown> | undefined;
    try {
      call = p.predict('3', chexmask, extras as never);
    } catch (e) {
      assert.unreachable(`thrown, not rejected: ${(e as Error).message}`);
    }
    const e = await call!.then(
      () => assert.unreachable(`accepted ${JSON.stringify([chexmask, extras])}`),
      (x: unknown) => x,
    );
    assert.instance(e, TypeError);
    assert.match((e as Error).message, message);
  }
  // the keys it knows still work, and leaving extras out is no error
  const r = await p.predict('3', { any: 'row' }, { overlay: false, masks: true });
  assert.ok('masks' in r && !('overlayPng' in r));
  await p.predict('3', undefined, undefined);
  await p.dispose();
});

test("predict's errors carry the caller's stack, their messages unchanged (a model step, a decode); a JS error keeps where it was thrown", async () => {
  // both fail from a timer callback: nothing of the caller is on the stack where they are made
  const later = (e: Error) => new Promise<never>((_, reject) => setTimeout(() => reject(e), 1));
  const base = fakeBackend();
  const backend: Backend = {
    ...base,
    loadClip: async (dir, device) => {
      const c = await base.loadClip(dir, device);
      const w: ClipLike = Object.create(c);
      w.encodeImage = () => later(new NativeError('ClipModel.encodeImage: input batch contains NaN or Inf'));
      return w;
    },
  };
  const failingPrep = () => later(new DataError('image-corrupt', 'cannot decode image', { file: 'x.jpg' }));
  const onModel = await MaskingPredictor.load({ modelDir: 'unused', backend, preprocessFn });
  const onDecode = await MaskingPredictor.load({
    modelDir: 'unused',
    backend: fakeBackend(),
    preprocessFn: failingPrep,
  });
  async function handleModelRequest() {
    return await onModel.predict('3', null);
  }
  async function handleDecodeRequest() {
    return await onDecode.predict('3', null);
  }
  const modelError = await handleModelRequest().catch((e: Error) => e);
  assert.instance(modelError, NativeError);
  assert.is((modelError as Error).message, 'ClipModel.encodeImage: input batch contains NaN or Inf');
  assert.match((modelError as Error).stack!, /^NativeError: ClipModel\.encodeImage: input batch/);
  assert.match((modelError as Error).stack!, /at handleModelRequest /);
  const decodeError = await handleDecodeRequest().catch((e: Error) => e);
  assert.instance(decodeError, DataError);
  assert.is((decodeError as Error).message, 'x.jpg: cannot decode image');
  assert.match((decodeError as Error).stack!, /at handleDecodeRequest /);
  // a JS error (a bug in our own code) keeps the frame that threw it, then the caller's
  function buggyInternalHelper(): never {
    return (undefined as unknown as { field: { x: never } }).field.x;
  }
  const onBug = await MaskingPredictor.load({
    modelDir: 'unused',
    backend: fakeBackend(),
    preprocessFn: async () => buggyInternalHelper(),
  });
  async function handleBugRequest() {
    return await onBug.predict('3', null);
  }
  const bug = await handleBugRequest().catch((e: Error) => e);
  assert.instance(bug, TypeError);
  const stack = (bug as Error).stack!;
  assert.match(stack, /^TypeError: Cannot read properties of undefined/);
  assert.match(stack, /at buggyInternalHelper \(.*predictor\.test\.ts:\d+/, 'the throwing site is kept');
  assert.match(
    stack,
    /\n {4}at <caller> \(called from\)\n[\s\S]*at handleBugRequest /,
    "then the caller's frames",
  );
  assert.ok(stack.indexOf('buggyInternalHelper') < stack.indexOf('handleBugRequest'));
  await Promise.all([onModel.dispose(), onDecode.dispose(), onBug.dispose()]);
});

test("load refuses a preprocess.size that is not the model's image size, before it opens anything", async () => {
  let opened = 0;
  const base = fakeBackend();
  const backend: Backend = {
    ...base,
    loadClip: (dir, device) => {
      opened++;
      return base.loadClip(dir, device);
    },
  };
  const e = await MaskingPredictor.load({ modelDir: MODEL_DIR, backend, preprocess: { size: 64 } }).catch(
    (x: unknown) => x,
  );
  assert.instance(e, ConfigError);
  assert.is(
    (e as Error).message,
    `preprocess.size 64 is not the model's image size 224 (${join(MODEL_DIR, 'model.json')} imageSize)`,
  );
  assert.is(opened, 0, 'nothing was opened');
  // the model's own size is accepted
  const p = await MaskingPredictor.load({ modelDir: MODEL_DIR, backend, preprocess: { size: 224 } });
  await p.dispose();
});

test('decoding overlaps the model; dispose lets calls still decoding finish on a live model', async () => {
  let decoding = 0;
  let maxDecoding = 0;
  const slowPrep = async (image: string | Uint8Array, chexmask: unknown) => {
    decoding++;
    maxDecoding = Math.max(maxDecoding, decoding);
    await new Promise((r) => setTimeout(r, 10));
    decoding--;
    return preprocessFn(image, chexmask);
  };
  // A model that fails when used after dispose(), as the native one does.
  const base = fakeBackend();
  const backend: Backend = {
    ...base,
    loadClip: async (dir, device) => {
      const c = await base.loadClip(dir, device);
      let freed = false;
      const w: ClipLike = Object.create(c);
      w.encodeImage = (x, n) =>
        freed ? Promise.reject(new Error('used after dispose')) : c.encodeImage(x, n);
      w.dispose = () => {
        freed = true;
      };
      return w;
    },
  };
  const p = await MaskingPredictor.load({ modelDir: 'unused', backend, preprocessFn: slowPrep });
  const calls = Array.from({ length: 6 }, (_, i) => p.predict(String(i), null));
  assert.is(p.pending, 6);
  const disposed = p.dispose(); // while all six are still decoding
  const rs = await Promise.all(calls);
  await disposed;
  assert.is(rs.length, 6);
  assert.ok(maxDecoding > 1, `images are decoded concurrently (max ${maxDecoding})`);
  assert.is(p.pending, 0);
  await p.predict('1', null).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /disposed/),
  );
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
