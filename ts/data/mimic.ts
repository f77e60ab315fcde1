/**
 * The index every dataset builder writes (its entries, options and summary), its file format
 * (index.jsonl + summary.json) and the checks of an entry read back. MIMIC-CXR-JPG's builder is in
 * datasets/mimic.ts, the others' beside it.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { DataError } from '../common/errors.js';
import { refuseNonFile } from '../common/files.js';
import { readJson, writeFileAtomicAsync } from '../common/io.js';
import { FINDINGS } from '../common/labels.js';
import {
  DATASETS,
  type DatasetName,
  datasetIdProblem,
  datasetPathProblem,
  isDatasetName,
} from './datasets/names.js';
import { idProblem } from './mimic-ids.js';

/** A split of the data set: training, validation (model selection, thresholds) or test. */
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

/** An image's path inside a MIMIC-CXR-JPG root: `files/pXX/pSUBJECT/sSTUDY/DICOM.jpg`. */
export function imagePath(subjectId: string, studyId: string, dicomId: string): string {
  return `files/p${subjectId.slice(0, 2)}/p${subjectId}/s${studyId}/${dicomId}.jpg`;
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

/**
 * Reads an `index.jsonl` written by writeIndex (or a directory holding one).
 * @throws {DataError} `missing-file` when there is none; `not-a-file` for a FIFO, device or folder in
 *   its place; `bad-index` for a row that is not an entry.
 */
export async function readIndex(pathOrDir: string): Promise<IndexEntry[]> {
  const p = pathOrDir.endsWith('.jsonl') ? pathOrDir : join(pathOrDir, 'index.jsonl');
  refuseNonFile(p); // a FIFO would park a pool thread forever, a device never end
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    throw new DataError('missing-file', 'no index here (run `cxrmask index` first)', { file: p });
  }
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

/** The summary.json next to an index (its folder or its index.jsonl), or null when there is none. */
function readIndexSummary(pathOrDir: string): Partial<IndexSummary> | null {
  const dir = pathOrDir.endsWith('.jsonl') ? dirname(pathOrDir) : pathOrDir;
  // null when missing; a FIFO or folder in its place, or bad JSON, is a DataError naming it
  return readJson<Partial<IndexSummary>>(join(dir, 'summary.json'));
}

/** The uncertain/blank label handling an index was built with (its summary.json), or null if unknown. */
export function indexLabelPolicy(pathOrDir: string): { uncertain: string; blank: string } | null {
  const o: { uncertain?: unknown; blank?: unknown } | undefined = readIndexSummary(pathOrDir)?.options;
  if (typeof o?.uncertain !== 'string' || typeof o?.blank !== 'string') return null;
  return { uncertain: o.uncertain, blank: o.blank };
}

/**
 * The index options that choose its rows and their labels (IndexSummary: dataset, options.views,
 * options.requirePositive, options.readerRule).
 */
export interface IndexRowFilters {
  dataset: string;
  views: string[];
  requirePositive: boolean;
  /** VinDr-CXR: how the three readers' labels were combined (absent: majority, the default). */
  readerRule?: string;
}

/**
 * The row filters an index was built with (its summary.json: dataset, views, requirePositive and,
 * for VinDr-CXR, readerRule), or null if unknown.
 */
export function indexRowFilters(pathOrDir: string): IndexRowFilters | null {
  const s = readIndexSummary(pathOrDir);
  const o: { views?: unknown; requirePositive?: unknown; readerRule?: unknown } | undefined = s?.options;
  if (!Array.isArray(o?.views) || typeof o?.requirePositive !== 'boolean') return null;
  // a MIMIC summary has no dataset field
  const rows: IndexRowFilters = {
    dataset: s?.dataset ?? 'mimic',
    views: o.views.map(String),
    requirePositive: o.requirePositive,
  };
  if (typeof o.readerRule === 'string') rows.readerRule = o.readerRule;
  return rows;
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
