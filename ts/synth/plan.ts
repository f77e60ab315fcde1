/**
 * Plans the synthetic tree: subjects, their studies (findings shown + raw labels), and each study's
 * images (view, size, CheXmask status). Cheap and sequential, all from one master stream of the seed.
 */
import { mulberry32 } from '../common/random.js';
import { imagePath, type Split } from '../data/mimic.js';
import type { Rng } from './phantom.js';
import type { PlannedImage } from './render.js';

export type RawLabel = 1 | 0 | -1 | null;

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

const hex8 = (rng: Rng) =>
  Math.floor(rng() * 0x100000000)
    .toString(16)
    .padStart(8, '0');

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

/** Planning knobs (the parsed SynthOptions). */
export interface PlanSettings {
  n: number;
  seed: number;
  width: number;
  height: number;
  sizeJitter: number;
  lateralRate: number;
  lowRcaRate: number;
  missingChexmaskRate: number;
}

/** The images to render, in plan order; `stream` picks each image's own PRNG stream. */
export function planImages(o: PlanSettings): (SynthImage & PlannedImage)[] {
  // Math.imul: a float product loses low bits for seeds above ~3.4 million, and two seeds then share data
  const master = mulberry32(Math.imul(o.seed, 2654435761) + 12345);
  const plan: (SynthImage & PlannedImage)[] = [];
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
  return plan;
}
