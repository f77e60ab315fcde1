// Inference-time masking from a Node service, without the CLI.
//
//   npm run setup                      # builds dist/ and exports models/tiny
//   node dist/cli/main.js synth --out .cache/example-data --n 40   # (or real MIMIC + CheXmask files)
//   node examples/predict-service.mjs .cache/example-data/chexmask/MIMIC-CXR-JPG.csv [checkpoint]
//
// Then: curl --data-binary @some.jpg 'http://localhost:8080/predict?dicomId=<id>'
//
// In your own project: import { MaskingPredictor, chexmaskRowFor } from 'cxrmask';
import { createServer } from 'node:http';
import { MaskingPredictor, chexmaskRowFor } from '../dist/index.js';

const [chexmaskCsv, checkpoint] = process.argv.slice(2);
if (!chexmaskCsv) {
  console.error('usage: node examples/predict-service.mjs <chexmask.csv> [best.ckpt]');
  process.exit(2);
}

// Load once (model on CPU or CUDA); zero-shot without a checkpoint, else the trained model of a run cell.
const predictor = await MaskingPredictor.load({ modelDir: 'models/tiny', checkpoint: checkpoint ?? null });

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method !== 'POST' || url.pathname !== '/predict') {
    res.writeHead(404).end();
    return;
  }
  try {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const image = Buffer.concat(chunks);
    const dicomId = url.searchParams.get('dicomId');
    // The CheXmask row (landmarks + mask grid size) of this image; null → only the original is scored.
    const row = dicomId ? await chexmaskRowFor(chexmaskCsv, dicomId) : null;
    // Safe under concurrent requests: calls are queued and run one at a time on the model.
    const r = await predictor.predict(image, row);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r));
  } catch (e) {
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: e.message }));
  }
});

server.listen(8080, () => console.log(`cxrmask ${predictor.kind} predictor on http://localhost:8080/predict`));
process.on('SIGINT', async () => {
  server.close();
  await predictor.dispose();
  process.exit(0);
});
