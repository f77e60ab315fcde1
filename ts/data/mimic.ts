/**
 * MIMIC-CXR-JPG index: streams the metadata, chexpert and split CSVs (plain or gzipped) of a MIMIC root
 * and produces one entry per kept image with its five labels, label mask and split.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { DataError, ReasonCounter } from '../common/errors.js';
import { writeFileAtomicAsync } from '../common/io.js';
import { FINDINGS } from '../common/labels.js';
import { parseOptions } from '../common/options.js';
import { mulberry32 } from '../common/random.js';
import { findCsv, openCsv } from './csv.js';
import {
  DATASETS,
  type DatasetName,
  datasetIdProblem,
  datasetPathProblem,
  isDatasetName,
} from './datasets/names.js';
import { DuplicateRows } from './duplicates.js';
import { idProblem, idsProblem } from './mimic-ids.js';
import { applyLabelPolicy, CHEXPERT_COLUMNS, readStudyLabels } from './mimic-labels.js';

/** Re-exported for callers that imported these from here. */
export { CHEXPERT_COLUMNS };

export type Split = 'train' | 'validate' | 'test';
export const SPLITS: readonly Split[] = ['train', 'validate', 'test'];

export interface IndexEntry {
  /** Which dataset the entry is from; absent means MIMIC-CXR-JPG (indexes written before there were others). */
  dataset?: DatasetName;
  /**
   * The image's CheXmask id, the key of the join and of the cache: MIMIC's dicom_id, NIH's Image Index,
   * CheXpert's Path without its root folder, PadChest's ImageID, VinDr's image_id.
   */
  dicomId: string;
  subjectId: string;
  studyId: string;
  view: string;
  split: Split;
  /** Relative to the MIMIC root: files/pXX/pSUBJECT/sSTUDY/DICOM.jpg */
  path: string;
  /** Five labels in FINDINGS order, 0/1 after the policies. */
  labels: number[];
  /** 1 = counts, 0 = ignored. */
  labelMask: number[];
  /** Image size from the metadata (Rows/Columns), when present. */
  width?: number;
  height?: number;
}

export const METADATA_COLUMNS = ['dicom_id', 'subject_id', 'study_id', 'ViewPosition'] as const;
export const SPLIT_COLUMNS = ['dicom_id', 'split'] as const;

export const IndexOptionsSchema = z
  .object({
    root: z.string().min(1),
    /** ViewPosition values kept. */
    views: z.array(z.string().min(1)).min(1).default(['PA', 'AP']),
    /** -1 labels: zeros → 0, ones → 1, ignore → masked out. */
    uncertain: z.enum(['zeros', 'ones', 'ignore']).default('zeros'),
    /** Blank labels: zeros → 0 (usual), ignore → masked out. */
    blank: z.enum(['zeros', 'ignore']).default('zeros'),
    /** Keep only images with at least one positive (raw 1.0) among the five (the paper's filter). */
    requirePositive: z.boolean().default(false),
    /** official: the split CSV; patient: a seeded patient-level split. */
    split: z.enum(['official', 'patient']).default('official'),
    splitSeed: z.number().int().default(0),
    /** train/validate/test fractions for the patient split. */
    splitFractions: z
      .tuple([z.number().min(0), z.number().min(0), z.number().min(0)])
      .default([0.8, 0.1, 0.1]),
    /** Drop entries whose JPEG is not on disk. */
    checkFiles: z.boolean().default(true),
  })
  .strict();
export type IndexOptions = z.input<typeof IndexOptionsSchema>;

export const PRESETS: Record<string, Partial<IndexOptions>> = {
  /** The paper: frontal, five labels, at least one positive, official split. */
  paper: {
    views: ['PA', 'AP'],
    requirePositive: true,
    split: 'official',
    uncertain: 'zeros',
    blank: 'zeros',
  },
  default: {},
};

export interface IndexSummary {
  /** Absent for MIMIC-CXR-JPG. */
  dataset?: DatasetName;
  root: string;
  options: Omit<z.output<typeof IndexOptionsSchema>, 'root'>;
  /** The tables read (MIMIC: metadata, chexpert, split). */
  files: Record<string, string | null>;
  /** Rows of the table that lists the images (MIMIC: the metadata CSV). */
  metadataRows: number;
  kept: number;
  perSplit: Record<Split, number>;
  perView: Record<string, number>;
  /** Kept images per view before the view filter too: every ViewPosition seen in the metadata. */
  viewsSeen: Record<string, number>;
  /** Per label: positives / negatives / ignored (mask 0) among kept entries, and the raw uncertain/blank counts. */
  perLabel: Record<
    string,
    { positive: number; negative: number; ignored: number; rawUncertain: number; rawBlank: number }
  >;
  subjects: number;
  studies: number;
  dropped: { counts: Record<string, number>; examples: Record<string, string[]> };
  /** Identical repeated rows, per file (skipped; a repeat that disagrees is an error instead). */
  duplicates: { counts: Record<string, number>; examples: Record<string, string[]> };
  patientsInSeveralSplits: number;
}

export function imagePath(subjectId: string, studyId: string, dicomId: string): string {
  return `files/p${subjectId.slice(0, 2)}/p${subjectId}/s${studyId}/${dicomId}.jpg`;
}

/** Seeded patient-level split: subjects are shuffled with the seed and cut by the fractions. */
export function patientSplit(
  subjects: Iterable<string>,
  seed: number,
  fractions: [number, number, number],
): Map<string, Split> {
  const list = [...new Set(subjects)].sort();
  const rnd = mulberry32(seed ^ 0x5eed);
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  const total = fractions[0] + fractions[1] + fractions[2];
  if (!(total > 0)) throw new RangeError('splitFractions must not all be zero');
  const nTrain = Math.round((list.length * fractions[0]) / total);
  const nVal = Math.round((list.length * fractions[1]) / total);
  const m = new Map<string, Split>();
  list.forEach((s, i) => {
    m.set(s, i < nTrain ? 'train' : i < nTrain + nVal ? 'validate' : 'test');
  });
  return m;
}

/** The official split CSV: split per dicom_id; bad rows are counted in `dropped`. */
async function readOfficialSplit(
  splitPath: string,
  dropped: ReasonCounter,
  duplicates: ReasonCounter,
): Promise<Map<string, Split>> {
  const splitByDicom = new Map<string, Split>();
  const csv = await openCsv(splitPath, SPLIT_COLUMNS);
  const seen = new DuplicateRows(splitPath, 'dicom_id', csv.header, duplicates);
  const d = csv.col('dicom_id');
  const s = csv.col('split');
  for await (const { row, values } of csv.records) {
    const sp = (values[s] ?? '').trim();
    if (!SPLITS.includes(sp as Split)) {
      dropped.add('bad-split-value', `${splitPath}, row ${row}, field "split": "${sp}"`);
      continue;
    }
    const id = (values[d] ?? '').trim();
    if (idProblem('dicom_id', id)) {
      dropped.add('bad-split-id', `${splitPath}, row ${row}: ${idProblem('dicom_id', id)}`);
      continue;
    }
    if (
      !seen.take(
        id,
        row,
        values.map((v) => v.trim()),
      )
    )
      continue;
    splitByDicom.set(id, sp as Split);
  }
  return splitByDicom;
}

/** Counts per split, view and label (raw uncertain/blank too), subjects, studies, and patients in several splits. */
export function tallyIndex(pending: (IndexEntry & { rawLabels: (number | null)[] })[]) {
  const perSplit: Record<Split, number> = { train: 0, validate: 0, test: 0 };
  const perView: Record<string, number> = {};
  const perLabel: IndexSummary['perLabel'] = {};
  for (const f of FINDINGS)
    perLabel[f] = { positive: 0, negative: 0, ignored: 0, rawUncertain: 0, rawBlank: 0 };
  const subjects = new Set<string>();
  const studies = new Set<string>();
  const splitsOfSubject = new Map<string, Set<Split>>();
  const entries: IndexEntry[] = [];
  for (const { rawLabels, ...e } of pending) {
    perSplit[e.split]++;
    perView[e.view] = (perView[e.view] ?? 0) + 1;
    FINDINGS.forEach((f, k) => {
      const pl = perLabel[f];
      if (!e.labelMask[k]) pl.ignored++;
      else if (e.labels[k]) pl.positive++;
      else pl.negative++;
      if (rawLabels[k] === -1) pl.rawUncertain++;
      if (rawLabels[k] === null) pl.rawBlank++;
    });
    subjects.add(e.subjectId);
    studies.add(`${e.subjectId}/${e.studyId}`);
    const s = splitsOfSubject.get(e.subjectId) ?? new Set<Split>();
    s.add(e.split);
    splitsOfSubject.set(e.subjectId, s);
    entries.push(e);
  }
  let patientsInSeveralSplits = 0;
  for (const s of splitsOfSubject.values()) if (s.size > 1) patientsInSeveralSplits++;
  return { entries, perSplit, perView, perLabel, subjects, studies, patientsInSeveralSplits };
}

/** Builds the index by streaming the three CSVs. Bad rows are dropped and counted per reason. */
export async function buildIndex(
  options: IndexOptions,
): Promise<{ entries: IndexEntry[]; summary: IndexSummary }> {
  const opts = parseOptions(IndexOptionsSchema, options, 'buildIndex');
  const { root } = opts;
  const base = join(root, 'mimic-cxr-2.0.0-');
  const metaPath = findCsv(`${base}metadata`);
  const chexPath = findCsv(`${base}chexpert`);
  const splitPath = opts.split === 'official' ? findCsv(`${base}split`) : null;
  const dropped = new ReasonCounter();
  const duplicates = new ReasonCounter();

  const labelsByStudy = await readStudyLabels(chexPath, dropped, duplicates);
  const splitByDicom = splitPath
    ? await readOfficialSplit(splitPath, dropped, duplicates)
    : new Map<string, Split>();
  // 3. Metadata, streamed, joined.
  const csv = await openCsv(metaPath, METADATA_COLUMNS);
  const ci = {
    dicom: csv.col('dicom_id'),
    subject: csv.col('subject_id'),
    study: csv.col('study_id'),
    view: csv.col('ViewPosition'),
    rows: csv.header.indexOf('Rows'),
    cols: csv.header.indexOf('Columns'),
  };
  const seen = new DuplicateRows(metaPath, 'dicom_id', csv.header, duplicates);
  const views = new Set(opts.views);
  const viewsSeen: Record<string, number> = {};
  const pending: (IndexEntry & { rawLabels: (number | null)[] })[] = [];
  let metadataRows = 0;
  for await (const { row, values } of csv.records) {
    metadataRows++;
    const dicomId = (values[ci.dicom] ?? '').trim();
    const subjectId = (values[ci.subject] ?? '').trim();
    const studyId = (values[ci.study] ?? '').trim();
    const view = (values[ci.view] ?? '').trim();
    const vkey = view === '' ? '(blank)' : view;
    const where = `${metaPath}, row ${row}, id ${dicomId}`;
    // ids become a path below: anything but their real shape is refused here
    const idBad = idsProblem({ dicom_id: dicomId, subject_id: subjectId, study_id: studyId });
    if (idBad) {
      dropped.add('bad-metadata-row', `${where}: ${idBad}`);
      continue;
    }
    if (
      !seen.take(
        dicomId,
        row,
        values.map((v) => v.trim()),
      )
    )
      continue;
    if (!views.has(view)) {
      dropped.add(`view-not-selected:${vkey}`);
      continue;
    }
    const rawLabels = labelsByStudy.get(`${subjectId}/${studyId}`);
    if (!rawLabels) {
      dropped.add('no-labels-for-study', `${where}: study s${studyId} has no row in ${chexPath}`);
      continue;
    }
    let split: Split = 'train';
    if (splitPath) {
      const sp = splitByDicom.get(dicomId);
      if (!sp) {
        dropped.add('no-split-row', `${where}: dicom_id absent from ${splitPath}`);
        continue;
      }
      split = sp;
    }
    if (opts.requirePositive && !rawLabels.some((v) => v === 1)) {
      dropped.add('no-positive-label');
      continue;
    }
    const { labels, labelMask } = applyLabelPolicy(rawLabels, opts);
    const path = imagePath(subjectId, studyId, dicomId);
    if (opts.checkFiles && !existsSync(join(root, path))) {
      dropped.add('image-missing', `${where}: ${join(root, path)} does not exist`);
      continue;
    }
    const e: IndexEntry & { rawLabels: (number | null)[] } = {
      dicomId,
      subjectId,
      studyId,
      view,
      split,
      path,
      labels,
      labelMask,
      rawLabels,
    };
    const h = ci.rows >= 0 ? Number(values[ci.rows]) : Number.NaN;
    const w = ci.cols >= 0 ? Number(values[ci.cols]) : Number.NaN;
    if (Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0) {
      e.height = h;
      e.width = w;
    }
    pending.push(e);
  }
  if (opts.split === 'patient') {
    const m = patientSplit(
      pending.map((e) => e.subjectId),
      opts.splitSeed,
      opts.splitFractions,
    );
    for (const e of pending) e.split = m.get(e.subjectId) as Split;
  }
  const { entries, perSplit, perView, perLabel, subjects, studies, patientsInSeveralSplits } =
    tallyIndex(pending);
  const { root: _r, ...optRest } = opts;
  return {
    entries,
    summary: {
      root,
      options: optRest,
      files: { metadata: metaPath, chexpert: chexPath, split: splitPath },
      metadataRows,
      kept: entries.length,
      perSplit,
      perView,
      viewsSeen,
      perLabel,
      subjects: subjects.size,
      studies: studies.size,
      dropped: dropped.toJSON(),
      duplicates: duplicates.toJSON(),
      patientsInSeveralSplits,
    },
  };
}

/** Writes `index.jsonl` (one entry per line) and `summary.json` atomically into `dir`. */
export async function writeIndex(
  dir: string,
  entries: IndexEntry[],
  summary: unknown,
): Promise<{ index: string; summary: string }> {
  await mkdir(dir, { recursive: true });
  const index = join(dir, 'index.jsonl');
  const sum = join(dir, 'summary.json');
  await writeFileAtomicAsync(
    index,
    entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : ''),
  );
  await writeFileAtomicAsync(sum, `${JSON.stringify(summary, null, 2)}\n`);
  return { index, summary: sum };
}

/** Reads an `index.jsonl` written by writeIndex (or a directory holding one). */
export async function readIndex(pathOrDir: string): Promise<IndexEntry[]> {
  const p = pathOrDir.endsWith('.jsonl') ? pathOrDir : join(pathOrDir, 'index.jsonl');
  const text = await readFile(p, 'utf8');
  const out: IndexEntry[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DataError('bad-index', `not JSON: ${(e as Error).message}`, { file: p, row: i + 1 });
    }
    const bad = indexEntryProblem(v);
    if (bad) throw new DataError('bad-index', bad.message, { file: p, row: i + 1, field: bad.field });
    out.push(v as IndexEntry);
  });
  return out;
}

/** The uncertain/blank label handling an index was built with (its summary.json), or null if unknown. */
export function indexLabelPolicy(pathOrDir: string): { uncertain: string; blank: string } | null {
  const dir = pathOrDir.endsWith('.jsonl') ? dirname(pathOrDir) : pathOrDir;
  const p = join(dir, 'summary.json');
  if (!existsSync(p)) return null;
  let o: { uncertain?: unknown; blank?: unknown } | undefined;
  try {
    o = (JSON.parse(readFileSync(p, 'utf8')) as IndexSummary).options;
  } catch (e) {
    throw new DataError('bad-index', `summary is not JSON: ${(e as Error).message}`, { file: p });
  }
  if (typeof o?.uncertain !== 'string' || typeof o?.blank !== 'string') return null;
  return { uncertain: o.uncertain, blank: o.blank };
}

const is01 = (x: unknown) => x === 0 || x === 1;

/**
 * What is wrong with an index entry (from a file or a caller), or null. The path is only ever the one
 * the ids name (files/pXX/pSUBJECT/sSTUDY/DICOM.jpg), so an entry cannot point outside the image tree.
 */
export function indexEntryProblem(v: unknown): { field: string; message: string } | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return { field: '(entry)', message: 'not a JSON object' };
  const e = v as Record<string, unknown>;
  const dataset = e.dataset ?? 'mimic';
  if (!isDatasetName(dataset))
    return { field: 'dataset', message: `${JSON.stringify(e.dataset)} is not one of ${DATASETS.join(', ')}` };
  if (dataset !== 'mimic') return otherEntryProblem(dataset, e);
  for (const [field, key] of [
    ['dicom_id', 'dicomId'],
    ['subject_id', 'subjectId'],
    ['study_id', 'studyId'],
  ] as const) {
    const p = idProblem(field, typeof e[key] === 'string' ? (e[key] as string) : undefined);
    if (p) return { field: key, message: p.replace(`field "${field}"`, key) };
  }
  if (!(SPLITS as readonly unknown[]).includes(e.split))
    return { field: 'split', message: `${JSON.stringify(e.split)} is not one of ${SPLITS.join(', ')}` };
  const want = imagePath(e.subjectId as string, e.studyId as string, e.dicomId as string);
  if (e.path !== want)
    return { field: 'path', message: `${JSON.stringify(e.path)} is not the image path of its ids (${want})` };
  return labelsProblem(e);
}

const SIMPLE_ID = /^[A-Za-z0-9_.-]{1,200}$/;

/** The checks of an entry of a dataset other than MIMIC: its id and path shapes (names.ts), then labels. */
function otherEntryProblem(
  dataset: DatasetName,
  e: Record<string, unknown>,
): { field: string; message: string } | null {
  const idBad = datasetIdProblem(dataset, 'dicomId', e.dicomId);
  if (idBad) return { field: 'dicomId', message: idBad };
  for (const key of ['subjectId', 'studyId'] as const) {
    if (typeof e[key] !== 'string' || !SIMPLE_ID.test(e[key] as string))
      return {
        field: key,
        message: `${JSON.stringify(e[key])} is not a plain id (letters, digits, "_", "-", ".")`,
      };
  }
  if (!(SPLITS as readonly unknown[]).includes(e.split))
    return { field: 'split', message: `${JSON.stringify(e.split)} is not one of ${SPLITS.join(', ')}` };
  const pathBad = datasetPathProblem(dataset, e.dicomId as string, e.path);
  if (pathBad) return { field: 'path', message: pathBad };
  return labelsProblem(e);
}

function labelsProblem(e: Record<string, unknown>): { field: string; message: string } | null {
  for (const key of ['labels', 'labelMask'] as const) {
    const a = e[key];
    if (!Array.isArray(a) || a.length !== FINDINGS.length || !a.every(is01))
      return { field: key, message: `expected ${FINDINGS.length} values, each 0 or 1` };
  }
  return null;
}
