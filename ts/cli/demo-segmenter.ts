/**
 * The demo's segmenter step: trains the tiny segmenter on the demo cache (a fixed subset, DEMO.segmenter)
 * into `<data>/segmenter/`, or reuses a finished one with the same fingerprint, and reports its test
 * Dice next to CheXmask's Dice RCA. Returns what config.segmenter needs.
 */
import { join } from 'node:path';
import { DEMO } from '../experiment/config.js';
import { openCache } from '../images/cache.js';
import { Segmenter } from '../model/segmenter.js';
import { evaluateSegmenter, formatSegEval } from '../segment/eval.js';
import { trainSegmenter } from '../segment/train.js';

export async function demoSegmenter(
  cacheDir: string,
  dataDir: string,
  o: { device: string; log: (s: string) => void; model?: string },
): Promise<{ dir: string; weights: string; seconds: number }> {
  const t0 = performance.now();
  const d = DEMO.segmenter;
  const model = o.model ?? d.model;
  const cache = openCache(cacheDir);
  const out = join(dataDir, 'segmenter');
  const seg = await Segmenter.load(model, { device: o.device as 'cpu', lr: d.lr, bf16: true });
  try {
    await trainSegmenter({
      cache,
      segmenter: seg,
      out,
      modelDir: model,
      epochs: d.epochs,
      batchSize: d.batchSize,
      seed: 0,
      maxTrain: d.maxTrainImages,
      fingerprint: { ...d, cache: cache.digest, model, params: seg.meta.params ?? null },
      onEpoch: (e) =>
        o.log(
          `[demo] segmenter epoch ${e.epoch}/${d.epochs}: val Dice right lung ${e.val.rightLung.toFixed(3)}, left lung ${e.val.leftLung.toFixed(3)}, heart ${e.val.heart.toFixed(3)} (${e.seconds.toFixed(0)} s)`,
        ),
    });
    await seg.load(join(out, 'best.pt'));
    o.log(formatSegEval(await evaluateSegmenter(seg, cache, { batchSize: d.batchSize })));
  } finally {
    await seg.dispose();
    cache.close();
  }
  return { dir: model, weights: join(out, 'best.pt'), seconds: (performance.now() - t0) / 1000 };
}
