// A thin client of `cxrmask serve`: posts each JPEG to /predict, prints original / masked / Δ per
// finding and where the masks came from, and saves the overlay PNGs the server drew.
//
//   npx cxrmask serve --segmenter .cache/demo-data/segmenter   # in another terminal (see docs/service.md)
//   node examples/predict-service.mjs [--url http://127.0.0.1:8080] [--dicom-id ID] [--overlays DIR] a.jpg …
//
// With --dicom-id (one image) the server uses that CheXmask row (it needs --chexmask); otherwise its
// segmenter predicts the masks, or, without one, only the original image is scored.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: a, positionals: images } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    'dicom-id': { type: 'string' },
    overlays: { type: 'string' },
  },
});
if (images.length === 0) {
  console.error('usage: node examples/predict-service.mjs [--url URL] [--dicom-id ID] [--overlays DIR] a.jpg …');
  process.exitCode = 2;
}

for (const file of images) {
  const q = new URLSearchParams();
  if (a['dicom-id']) q.set('dicomId', a['dicom-id']);
  if (a.overlays) q.set('overlay', '1');
  let bytes;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    console.error(`${file}: cannot read (${e.code ?? e.message})`);
    process.exitCode = 1;
    continue;
  }
  let res;
  try {
    res = await fetch(`${a.url}/predict?${q}`, { method: 'POST', body: bytes });
  } catch (e) {
    console.error(`${a.url}: cannot reach the service (${e.cause?.code ?? e.cause?.message ?? e.message}); is \`cxrmask serve\` running?`);
    process.exitCode = 1;
    break;
  }
  const body = await res.json();
  if (res.status !== 200) {
    console.error(`${file}: ${res.status} ${body.error}: ${body.message}`);
    process.exitCode = 1;
    continue;
  }
  console.log(`${file} (${body.kind}, masks: ${body.maskSource ?? 'none'})`);
  for (const [f, p] of Object.entries(body.original)) {
    const m = body.masked ? body.masked[f].toFixed(3) : 'n/a';
    const d = body.delta ? `${body.delta[f] >= 0 ? '+' : ''}${body.delta[f].toFixed(3)}` : '';
    console.log(`  ${f.padEnd(18)} ${p.toFixed(3)}  ${m}  ${d}`);
  }
  if (a.overlays && body.overlayPng) {
    mkdirSync(a.overlays, { recursive: true });
    const out = join(a.overlays, `${basename(file).replace(/\.[^.]+$/, '')}-overlay.png`);
    writeFileSync(out, Buffer.from(body.overlayPng, 'base64'));
    console.log(`  overlay: ${out}`);
  }
}
