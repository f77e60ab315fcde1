/** 1,000 small calls do not grow RSS beyond a small bound. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Classifier } from '../../ts/model/classifier.js';
import { ClipModel } from '../../ts/model/clip.js';
import { MODEL_DIR, requireModel } from './helpers.js';

const gc = (globalThis as { gc?: () => void }).gc;

test('1,000 small native calls keep RSS bounded', async () => {
  requireModel();
  const model = await ClipModel.load(MODEL_DIR, { device: 'cpu' });
  const head = await Classifier.create({ inputDim: model.embedDim, device: 'cpu' });
  try {
    const x = new Float32Array(3 * 224 * 224).fill(0.1);
    const ids = new BigInt64Array(model.contextLength);
    ids[0] = 2n;
    ids[1] = 3n;
    const labels = new Float32Array(5).fill(1);
    const round = async () => {
      const f = await model.encodeImage(x, 1);
      await model.encodeText(ids, 1);
      await head.trainStep(f, 1, labels);
      await head.predict(f, 1);
    };
    for (let i = 0; i < 50; i++) await round(); // warm-up: allocator pools, JIT profiling
    gc?.();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 250; i++) await round(); // 1,000 native calls
    gc?.();
    await new Promise((r) => setTimeout(r, 10));
    gc?.();
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    assert.ok(grown < 40, `RSS grew by ${grown.toFixed(1)} MiB over 1,000 calls`);
  } finally {
    model.dispose();
    head.dispose();
  }
});

test.run();
