// Score a few images of a synthetic data set, original vs masked, with concurrent calls.
//
//   npx cxrmask synth --out .cache/example-data --n 40
//   node examples/predict-batch.mjs .cache/example-data [runs/<run>/cells/jft-masked-s0/best.ckpt]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FINDINGS, imagePath, joinChexmask, MaskingPredictor } from 'cxrmask';

const dir = process.argv[2] ?? '.cache/example-data';
const checkpoint = process.argv[3] ?? null; // e.g. runs/<run>/cells/jft-masked-s0/best.ckpt
const csv = join(dir, 'chexmask', 'MIMIC-CXR-JPG.csv');
const meta = gunzipSync(readFileSync(join(dir, 'mimic', 'mimic-cxr-2.0.0-metadata.csv.gz'))).toString().split('\n');
const header = meta[0].split(',');
const rows = meta.slice(1).filter(Boolean).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])));
const frontal = rows.filter((r) => r.ViewPosition === 'PA' || r.ViewPosition === 'AP').slice(0, 4);

// Join the CheXmask rows of all images once (the real CSV is large), then predict concurrently.
const { rows: chexmask } = await joinChexmask(csv, frontal.map((r) => r.dicom_id));
const predictor = await MaskingPredictor.load({ modelDir: 'models/tiny', checkpoint });
const results = await Promise.all(
  frontal.map(async (r) => {
    const path = join(dir, 'mimic', imagePath(r.subject_id, r.study_id, r.dicom_id));
    return { id: r.dicom_id, ...(await predictor.predict(path, chexmask.get(r.dicom_id) ?? null)) };
  }),
);
for (const r of results) {
  console.log(r.id, FINDINGS.map((f) => `${f}: ${r.original[f].toFixed(3)} → ${r.masked ? r.masked[f].toFixed(3) : 'n/a'}`).join(', '));
}
await predictor.dispose();
