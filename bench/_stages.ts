// Per-stage time of one predict call (c=1), tiny + seg-tiny, 1024×1280 JPEGs from bench/out.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodePlane, planeToTensor, resolvePreprocess } from '../ts/images/preprocess.ts';
import { Segmenter } from '../ts/model/segmenter.ts';
import { MaskingPredictor } from '../ts/service/predictor.ts';
import { setThreads } from '../ts/native.ts';
setThreads(2);
const dir = process.argv[2]!;
const files: string[] = [];
const walk = (d: string) => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = join(d, e.name); if (e.isDirectory()) walk(p); else if (p.endsWith('.jpg')) files.push(p); } };
walk(dir);
const imgs = files.slice(0, 16).map((f) => readFileSync(f));
const pp = resolvePreprocess({ size: 224 });
const med = (v: number[]) => v.sort((a, b) => a - b)[v.length >> 1]!;
async function time(name: string, f: (b: Buffer) => Promise<unknown>) {
  for (const b of imgs.slice(0, 4)) await f(b);
  const t: number[] = [];
  for (const b of imgs) { const s = performance.now(); await f(b); t.push(performance.now() - s); }
  console.log(name.padEnd(28), med(t).toFixed(2), 'ms');
}
await time('metadata', (b) => sharp(b).metadata());
await time('decodePlane', (b) => decodePlane(b, pp));
const { gray } = await decodePlane(imgs[0]!, pp);
await time('planeToTensor', async () => planeToTensor(gray, null, pp, null));
await time('png overlay encode', async () => sharp(Buffer.alloc(224 * 224 * 3), { raw: { width: 224, height: 224, channels: 3 } }).png().toBuffer());
const seg = await Segmenter.load('models/seg-tiny', { device: 'cpu' });
const x = planeToTensor(gray, null, pp, null);
await time('segmenter predictMasks', () => seg.predictMasks(x, 1));
const p = await MaskingPredictor.load({ modelDir: 'models/tiny', device: 'cpu', segmenter: seg, untrained: true });
const x2 = new Float32Array(2 * x.length); x2.set(x); x2.set(x, x.length);
await time('whole predict (overlay)', (b) => p.predict(b, null, { overlay: true }));
await time('whole predict (no overlay)', (b) => p.predict(b, null));
await p.dispose();
