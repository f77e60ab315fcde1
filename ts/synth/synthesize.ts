/**
 * Synthetic MIMIC-CXR-JPG + CheXmask generator: a tree shaped like the real one (JPEGs under
 * files/pXX/pSUBJECT/sSTUDY/, the three CSVs gzipped) and a CheXmask-shaped CSV (OriginalResolution
 * layout: RLE + numpy-form landmarks + RCA + Height/Width) for the same frontal images.
 * Deterministic per seed: every image has its own PRNG stream derived from (seed, image number).
 */

import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomicAsync } from '../common/io.js';
import { intInRange } from '../common/options.js';
import { CHEXMASK_FILE, DATASETS, type DatasetName } from '../data/datasets/names.js';
import type { Split } from '../data/mimic.js';
import { writeDatasetChexmask } from './chexmask-csv.js';
import { chexpertLayout, writeChexpertTables } from './chexpert.js';
import { writeChexmaskCsv, writeMimicCsvs } from './mimic-csv.js';
import { nihLayout, writeNihTables } from './nih14.js';
import { checkSynthTargets, markSynthTree } from './ownership.js';
import { padchestLayout, writePadchestTable } from './padchest.js';
import { planImages, type SynthImage } from './plan.js';
import type { RenderSettings } from './render.js';
import { renderAll } from './render-all.js';
import { vindrLayout, writeVindrTables } from './vindr.js';
import { makeTreeFolder } from './write.js';

export const SynthOptionsSchema = z.object({
  out: z.string().min(1),
  /** The layout written: out/<dataset>/ plus CheXmask's file for it under out/chexmask/. */
  dataset: z.enum(DATASETS).default('mimic'),
  n: z.number().int().min(1).max(1_000_000),
  /** The PRNG seeds are 32-bit: a larger seed would give another seed's data. */
  seed: intInRange(0, 2 ** 32 - 1).default(0),
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
  /**
   * Replace out/<dataset> and its CheXmask CSV even when synth did not write them (by default they are
   * refused: those are the paths of the real datasets).
   */
  force: z.boolean().default(false),
});
export type SynthOptions = z.input<typeof SynthOptionsSchema> & {
  onProgress?: (done: number, total: number) => void;
};

export interface SynthSummary {
  out: string;
  dataset: DatasetName;
  /** The dataset root (out/<dataset>; the name predates the other layouts). */
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

/**
 * Plan, render (JPEGs + CheXmask lines), write the CSVs, then the summary.
 * @throws {ConfigError} (rejects) out/<dataset> or its CheXmask CSV exists and synth did not write it
 *   (without `force`), naming each path; nothing is written then.
 */
export async function synthesize(options: SynthOptions): Promise<SynthSummary> {
  const t0 = performance.now();
  const o = SynthOptionsSchema.parse(options);
  const { mimicRoot, chexDir } = await claimTargets(o);
  const plan = planLayout(o);

  // Render + encode: in worker threads when there is enough work, else in this thread.
  const dirs = new Set(plan.map((p) => dirname(join(mimicRoot, p.path))));
  await Promise.all([...dirs].map(makeTreeFolder));
  const settings: RenderSettings = {
    seed: o.seed,
    mimicRoot,
    quality: o.quality,
    landmarkFormat: o.landmarkFormat,
  };
  const nWorkers = Math.min(o.workers ?? 0, availableParallelism(), plan.length);
  const chexRows = await renderAll(plan, settings, nWorkers, o.concurrency, options.onProgress);

  const studies = await writeTables(o.dataset, plan, mimicRoot);
  const chexmask =
    o.dataset === 'mimic'
      ? await writeChexmaskCsv(chexDir, chexRows)
      : await writeDatasetChexmask(chexDir, o.dataset, chexRows);
  await markSynthTree(mimicRoot, o.dataset, chexmask);

  const c = counts(plan);
  const summary: SynthSummary = {
    out: o.out,
    dataset: o.dataset,
    mimicRoot,
    chexmaskCsv: chexmask.path,
    seed: o.seed,
    n: plan.length,
    subjects: c.subjects,
    studies,
    perView: c.perView,
    perSplit: c.perSplit,
    chexmaskRows: chexmask.rows,
    lowRcaRows: c.lowRcaRows,
    missingChexmask: c.missingChexmask,
    seconds: (performance.now() - t0) / 1000,
    images: plan.map(({ stream: _s, ...im }) => im),
  };
  const { images: _i, ...small } = summary;
  await writeFileAtomicAsync(join(o.out, 'synth-summary.json'), `${JSON.stringify(small, null, 2)}\n`);
  return summary;
}

type Parsed = z.output<typeof SynthOptionsSchema>;
type Planned = ReturnType<typeof planImages>;

/**
 * Checks that out/<dataset> and its CheXmask CSV are synth's (unless forced), empties the tree and marks
 * it, before anything else is written.
 */
async function claimTargets(o: Parsed): Promise<{ mimicRoot: string; chexDir: string }> {
  const mimicRoot = join(o.out, o.dataset);
  const chexDir = join(o.out, 'chexmask');
  const keptCsv = o.force
    ? undefined
    : await checkSynthTargets(o.dataset, mimicRoot, join(chexDir, CHEXMASK_FILE[o.dataset]));
  if (o.clean) await rm(mimicRoot, { recursive: true, force: true });
  await makeTreeFolder(mimicRoot);
  await makeTreeFolder(chexDir);
  // marked first, so that an interrupted synth's partial tree is still its own
  await markSynthTree(mimicRoot, o.dataset, keptCsv);
  return { mimicRoot, chexDir };
}

/** The images, with the paths and ids of the dataset's layout. */
function planLayout(o: Parsed): Planned {
  // NIH and VinDr have frontal images only
  const frontalOnly = o.dataset === 'nih14' || o.dataset === 'vindr';
  const planned = planImages(frontalOnly ? { ...o, lateralRate: 0 } : o);
  const layouts = {
    mimic: (p: Planned) => p,
    nih14: nihLayout,
    chexpert: chexpertLayout,
    padchest: padchestLayout,
    vindr: vindrLayout,
  };
  return layouts[o.dataset](planned);
}

/** Writes the dataset's label and metadata tables. @returns the number of studies. */
async function writeTables(dataset: DatasetName, plan: Planned, root: string): Promise<number> {
  if (dataset === 'mimic') return writeMimicCsvs(plan, root);
  if (dataset === 'nih14') await writeNihTables(plan, root);
  else if (dataset === 'chexpert') {
    await writeChexpertTables(plan, root);
    return new Set(plan.map((p) => `${p.subjectId}/${p.studyId}`)).size;
  } else if (dataset === 'padchest') {
    await writePadchestTable(plan, root);
    return new Set(plan.map((p) => p.studyId)).size;
  } else await writeVindrTables(plan, root);
  return plan.length;
}

/** The summary's counts of the plan. */
function counts(plan: Planned) {
  const perView: Record<string, number> = {};
  const perSplit: Record<Split, number> = { train: 0, validate: 0, test: 0 };
  for (const im of plan) {
    const v = im.view || '(blank)';
    perView[v] = (perView[v] ?? 0) + 1;
    perSplit[im.split]++;
  }
  return {
    subjects: new Set(plan.map((p) => p.subjectId)).size,
    perView,
    perSplit,
    lowRcaRows: plan.filter((p) => p.chexmask === 'low-rca').length,
    missingChexmask: plan.filter((p) => p.chexmask === 'missing').length,
  };
}
