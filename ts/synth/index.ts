/**
 * Synthetic MIMIC-CXR-JPG + CheXmask generator: a tree shaped like the real one (JPEGs under
 * files/pXX/pSUBJECT/sSTUDY/, the three CSVs gzipped) and a CheXmask-shaped CSV (OriginalResolution
 * layout: RLE + numpy-form landmarks + RCA + Height/Width) for the same frontal images.
 * Deterministic per seed: every image has its own PRNG stream derived from (seed, image number).
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { z } from 'zod';
import { atomicWrite, imagePath, mulberry32, type Split } from '../data/mimic.js';
import { FINDINGS } from '../labels.js';
import type { Rng } from './phantom.js';
import { type PlannedImage, type RenderSettings, renderOne } from './render.js';

export const SynthOptionsSchema = z.object({
  out: z.string().min(1),
  n: z.number().int().min(1).max(1_000_000),
  seed: z.number().int().default(0),
  width: z.number().int().min(64).max(8192).default(320),
  height: z.number().int().min(64).max(8192).default(384),
  /** Relative per-image size jitter (real images vary in size). */
  sizeJitter: z.number().min(0).max(0.5).default(0.06),
  /** Fraction of studies that also get a lateral image. */
  lateralRate: z.number().min(0).max(1).default(0.25),
  /** Fraction of frontal CheXmask rows with a poor segmentation (Dice RCA < 0.7). */
  lowRcaRate: z.number().min(0).max(1).default(0.06),
  /** Fraction of frontal images with no CheXmask row. */
  missingChexmaskRate: z.number().min(0).max(1).default(0.02),
  /** 'numpy' (OriginalResolution style) or 'flat' (Preprocessed style) landmark serialisation. */
  landmarkFormat: z.enum(['numpy', 'flat']).default('numpy'),
  quality: z.number().int().min(50).max(100).default(90),
  concurrency: z.number().int().min(1).max(64).default(4),
  /** Worker threads rendering images (0 = in this thread, the default: on small machines threads cost more than they save). */
  workers: z.number().int().min(0).max(64).optional(),
  clean: z.boolean().default(true),
});
export type SynthOptions = z.input<typeof SynthOptionsSchema> & {
  onProgress?: (done: number, total: number) => void;
};

export type RawLabel = 1 | 0 | -1 | null;

/** A worker running ./worker.js (built) or ./worker.ts (under tsx, which the worker must register itself). */
function makeWorkerFactory(): (() => Worker) | null {
  const js = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return () => new Worker(js);
  const ts = new URL('./worker.ts', import.meta.url);
  if (!existsSync(fileURLToPath(ts))) return null;
  let api: string;
  try {
    api = import.meta.resolve('tsx/esm/api');
  } catch {
    return null;
  }
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); });`;
  return () => new Worker(code, { eval: true });
}

/** Renders every planned image; returns the CheXmask CSV line per image ('' when none). */
async function renderAll(
  plan: PlannedImage[],
  settings: RenderSettings,
  nWorkers: number,
  concurrency: number,
  onProgress?: (done: number, total: number) => void,
): Promise<string[]> {
  const lines: string[] = new Array(plan.length).fill('');
  let done = 0;
  const tick = () => {
    done++;
    onProgress?.(done, plan.length);
  };
  const factory = nWorkers > 0 ? makeWorkerFactory() : null;
  if (factory) {
    const workers = Array.from({ length: nWorkers }, factory);
    try {
      let next = 0;
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              const send = () => {
                if (next >= plan.length) return resolve();
                const job = next++;
                w.postMessage({ job, img: plan[job], settings });
              };
              w.on('message', (m: { job: number; line?: string; error?: string }) => {
                if (m.error !== undefined)
                  return reject(new Error(`synth image ${plan[m.job]?.path}: ${m.error}`));
                lines[m.job] = m.line ?? '';
                tick();
                send();
              });
              w.on('error', reject);
              send();
            }),
        ),
      );
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
    return lines;
  }
  const inflight = new Set<Promise<void>>();
  for (let k = 0; k < plan.length; k++) {
    const job = k;
    const p: Promise<void> = renderOne(plan[job], settings).then((line) => {
      lines[job] = line;
      tick();
    });
    const tracked: Promise<void> = p.finally(() => inflight.delete(tracked));
    inflight.add(tracked);
    if (inflight.size >= concurrency) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  return lines;
}

export interface SynthImage {
  dicomId: string;
  subjectId: string;
  studyId: string;
  view: string;
  split: Split;
  width: number;
  height: number;
  path: string;
  /** Raw CheXpert-style labels of the study, FINDINGS order (null = blank). */
  labels: RawLabel[];
  /** What the phantom actually shows (the latent truth). */
  shown: boolean[];
  /** ok | low-rca | missing (frontal without a row) | none (not frontal). */
  chexmask: 'ok' | 'low-rca' | 'missing' | 'none';
  rca: number | null;
}

export interface SynthSummary {
  out: string;
  mimicRoot: string;
  chexmaskCsv: string;
  seed: number;
  n: number;
  subjects: number;
  studies: number;
  perView: Record<string, number>;
  perSplit: Record<Split, number>;
  chexmaskRows: number;
  lowRcaRows: number;
  missingChexmask: number;
  seconds: number;
  images: SynthImage[];
}

const hex8 = (rng: Rng) =>
  Math.floor(rng() * 0x100000000)
    .toString(16)
    .padStart(8, '0');
const fmt = (v: RawLabel) => (v === null ? '' : v.toFixed(1));

function sampleStudy(rng: Rng): { shown: boolean[]; labels: RawLabel[] } {
  const card = rng() < 0.24;
  const edema = rng() < (card ? 0.4 : 0.14);
  const eff = rng() < (edema ? 0.5 : card ? 0.3 : 0.17);
  const cons = rng() < 0.16;
  const atel = rng() < (eff ? 0.4 : 0.18);
  const shown = [atel, card, cons, edema, eff]; // FINDINGS order
  const labels = shown.map((s): RawLabel => {
    const r = rng();
    if (s) return r < 0.9 ? 1 : -1;
    if (r < 0.05) return -1;
    return r < 0.45 ? 0 : null;
  });
  return { shown, labels };
}

export async function synthesize(options: SynthOptions): Promise<SynthSummary> {
  const t0 = performance.now();
  const o = SynthOptionsSchema.parse(options);
  const out = o.out;
  const mimicRoot = join(out, 'mimic');
  const chexDir = join(out, 'chexmask');
  if (o.clean) await rm(mimicRoot, { recursive: true, force: true });
  await mkdir(mimicRoot, { recursive: true });
  await mkdir(chexDir, { recursive: true });

  // 1. Plan subjects / studies / images (cheap, sequential, from the master stream).
  const master = mulberry32(o.seed * 2654435761 + 12345);
  const plan: (SynthImage & { stream: number })[] = [];
  let subjectNo = 0;
  let studyCounter = 0;
  while (plan.length < o.n) {
    const subjectId = String(10000000 + subjectNo * 1009 + Math.floor(master() * 1000));
    const r = master();
    let split: Split = r < 0.8 ? 'train' : r < 0.9 ? 'validate' : 'test';
    if (subjectNo === 1) split = 'validate';
    if (subjectNo === 2) split = 'test';
    subjectNo++;
    const nStudies = 1 + (master() < 0.45 ? 1 : 0) + (master() < 0.15 ? 1 : 0);
    for (let s = 0; s < nStudies && plan.length < o.n; s++) {
      const studyId = String(50000000 + studyCounter++ * 37 + Math.floor(master() * 30));
      const { shown, labels } = sampleStudy(master);
      const nFrontal = master() < 0.06 ? 2 : 1;
      const views: string[] = [];
      for (let k = 0; k < nFrontal; k++) {
        const v = master();
        views.push(v < 0.02 ? '' : v < 0.5 ? 'PA' : 'AP');
      }
      if (master() < o.lateralRate) views.push(master() < 0.8 ? 'LATERAL' : 'LL');
      for (const view of views) {
        if (plan.length >= o.n) break;
        const dicomId = [hex8(master), hex8(master), hex8(master), hex8(master), hex8(master)].join('-');
        const jw = 1 + o.sizeJitter * (2 * master() - 1);
        const jh = 1 + o.sizeJitter * (2 * master() - 1);
        const width = Math.max(64, Math.round(o.width * jw));
        const height = Math.max(64, Math.round(o.height * jh));
        const frontal = view === 'PA' || view === 'AP';
        let chexmask: SynthImage['chexmask'] = 'none';
        let rca: number | null = null;
        if (frontal) {
          const c = master();
          if (c < o.missingChexmaskRate) chexmask = 'missing';
          else if (c < o.missingChexmaskRate + o.lowRcaRate) {
            chexmask = 'low-rca';
            rca = Math.round((0.4 + 0.29 * master()) * 10000) / 10000;
          } else {
            chexmask = 'ok';
            rca = Math.round(Math.min(0.95, 0.7 + 0.25 * master()) * 10000) / 10000;
          }
        }
        plan.push({
          dicomId,
          subjectId,
          studyId,
          view,
          split,
          width,
          height,
          path: imagePath(subjectId, studyId, dicomId),
          labels,
          shown,
          chexmask,
          rca,
          stream: plan.length,
        });
      }
    }
  }

  // 2. Render + encode: in worker threads when there is enough work, else in this thread.
  const dirs = new Set(plan.map((p) => dirname(join(mimicRoot, p.path))));
  await Promise.all([...dirs].map((d) => mkdir(d, { recursive: true })));
  const settings: RenderSettings = {
    seed: o.seed,
    mimicRoot,
    quality: o.quality,
    landmarkFormat: o.landmarkFormat,
  };
  const nWorkers = Math.min(o.workers ?? 0, availableParallelism(), plan.length);
  const chexRows = await renderAll(plan, settings, nWorkers, o.concurrency, options.onProgress);

  // 3. CSVs.
  const meta = [
    'dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning',
  ];
  const viewMeaning: Record<string, string> = {
    PA: 'postero-anterior',
    AP: 'antero-posterior',
    LATERAL: 'lateral',
    LL: 'left lateral',
    '': '',
  };
  for (const im of plan) {
    const date = 21000101 + (Number(im.studyId) % 28);
    meta.push(
      [
        im.dicomId,
        im.subjectId,
        im.studyId,
        'CHEST (PA AND LAT)',
        im.view,
        im.height,
        im.width,
        date,
        '101500.000',
        'CHEST (PA AND LAT)',
        viewMeaning[im.view] ?? '',
        'Erect',
      ].join(','),
    );
  }
  const otherLabels = [
    'Enlarged Cardiomediastinum',
    'Fracture',
    'Lung Lesion',
    'Lung Opacity',
    'No Finding',
    'Pleural Other',
    'Pneumonia',
    'Pneumothorax',
    'Support Devices',
  ];
  const chexHeader = [
    'subject_id',
    'study_id',
    'Atelectasis',
    'Cardiomegaly',
    'Consolidation',
    'Edema',
    'Enlarged Cardiomediastinum',
    'Fracture',
    'Lung Lesion',
    'Lung Opacity',
    'No Finding',
    'Pleural Effusion',
    'Pleural Other',
    'Pneumonia',
    'Pneumothorax',
    'Support Devices',
  ];
  const chex = [chexHeader.join(',')];
  const seenStudy = new Set<string>();
  for (const im of plan) {
    const key = `${im.subjectId}/${im.studyId}`;
    if (seenStudy.has(key)) continue;
    seenStudy.add(key);
    const byName: Record<string, string> = {};
    FINDINGS.forEach((f, k) => {
      byName[f] = fmt(im.labels[k]);
    });
    const anyPos = im.labels.some((v) => v === 1);
    for (const ol of otherLabels) byName[ol] = ol === 'No Finding' ? (anyPos ? '' : '1.0') : '';
    chex.push([im.subjectId, im.studyId, ...chexHeader.slice(2).map((h) => byName[h])].join(','));
  }
  const split = [
    'dicom_id,study_id,subject_id,split',
    ...plan.map((im) => [im.dicomId, im.studyId, im.subjectId, im.split].join(',')),
  ];
  const base = join(mimicRoot, 'mimic-cxr-2.0.0-');
  await writeFile(`${base}metadata.csv.gz`, gzipSync(`${meta.join('\n')}\n`));
  await writeFile(`${base}chexpert.csv.gz`, gzipSync(`${chex.join('\n')}\n`));
  await writeFile(`${base}split.csv.gz`, gzipSync(`${split.join('\n')}\n`));
  const chexmaskCsv = join(chexDir, 'MIMIC-CXR-JPG.csv');
  const chexLines = [
    'dicom_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width',
    ...chexRows.filter((r) => r !== ''),
  ];
  await atomicWrite(chexmaskCsv, `${chexLines.join('\n')}\n`);

  const perView: Record<string, number> = {};
  const perSplit: Record<Split, number> = { train: 0, validate: 0, test: 0 };
  for (const im of plan) {
    const v = im.view || '(blank)';
    perView[v] = (perView[v] ?? 0) + 1;
    perSplit[im.split]++;
  }
  const images: SynthImage[] = plan.map(({ stream: _s, ...im }) => im);
  const summary: SynthSummary = {
    out,
    mimicRoot,
    chexmaskCsv,
    seed: o.seed,
    n: plan.length,
    subjects: new Set(plan.map((p) => p.subjectId)).size,
    studies: seenStudy.size,
    perView,
    perSplit,
    chexmaskRows: chexLines.length - 1,
    lowRcaRows: plan.filter((p) => p.chexmask === 'low-rca').length,
    missingChexmask: plan.filter((p) => p.chexmask === 'missing').length,
    seconds: (performance.now() - t0) / 1000,
    images,
  };
  const { images: _i, ...small } = summary;
  await atomicWrite(join(out, 'synth-summary.json'), `${JSON.stringify(small, null, 2)}\n`);
  return summary;
}
