// Inference-time masking over HTTP: one model, one queue, CheXmask rows looked up by dicomId.
//
//   npm run setup                      # builds dist/ and exports models/tiny
//   node dist/cli/main.js synth --out .cache/example-data --n 40   # (or real MIMIC + CheXmask files)
//   node examples/predict-service.mjs --chexmask .cache/example-data/chexmask/MIMIC-CXR-JPG.csv
//
// Then: curl --data-binary @some.jpg 'http://127.0.0.1:8080/predict?dicomId=<id>'
// Options: --checkpoint runs/<run>/cells/<cell>/best.ckpt  --model models/tiny  --host 127.0.0.1
//          --port 8080  --body-limit-mb 20  --max-queue 16  --min-dice 0.7  --contours landmarks|rle
// Ctrl-C / SIGTERM: stops accepting, finishes in-flight requests, frees the model, exits 0.
//
// In your own project: import { ChexmaskIndex, closeOnSignals, createServer, MaskingPredictor } from 'cxrmask';
import { parseArgs } from 'node:util';
import { ChexmaskIndex, closeOnSignals, createServer, MaskingPredictor } from '../dist/index.js';

const { values: a } = parseArgs({
  options: {
    chexmask: { type: 'string' },
    checkpoint: { type: 'string' },
    model: { type: 'string', default: 'models/tiny' },
    host: { type: 'string', default: '127.0.0.1' }, // 0.0.0.0 only behind a proxy you control
    port: { type: 'string', default: '8080' },
    'body-limit-mb': { type: 'string', default: '20' },
    'max-queue': { type: 'string', default: '16' },
    'min-dice': { type: 'string', default: '0.7' },
    contours: { type: 'string', default: 'landmarks' },
  },
});

// The CSV is read once here (a pass over the whole file); requests then read only their own row.
const chexmask = a.chexmask
  ? await ChexmaskIndex.build(a.chexmask, { minDice: Number(a['min-dice']), keepRle: a.contours === 'rle' })
  : null;
if (chexmask) console.log(`CheXmask index: ${chexmask.size} rows in ${chexmask.summary.seconds.toFixed(1)} s`);
const predictor = await MaskingPredictor.load({
  modelDir: a.model,
  checkpoint: a.checkpoint ?? null, // zero-shot without one
  overlay: { source: a.contours },
});
const app = createServer({
  predictor,
  chexmask,
  bodyLimit: Number(a['body-limit-mb']) * 1024 * 1024,
  maxQueue: Number(a['max-queue']),
  logger: { level: 'info' },
});
closeOnSignals(app);
await app.listen({ host: a.host, port: Number(a.port) });
