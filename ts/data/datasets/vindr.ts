/**
 * VinDr-CXR, in either of its releases:
 * - PhysioNet 1.0.0: annotations/image_labels_train.csv (one 0/1 row per image and radiologist,
 *   `rad_id`), annotations/image_labels_test.csv (one consensus row per image), train/ and test/ DICOMs;
 * - Kaggle VinBigData: train.csv, one row per box (`class_name`, `rad_id`), train/ DICOMs only. It has
 *   no Edema class, so Edema is masked out (never counted), and no labelled test set, so the split is
 *   the seeded one by image.
 * Several radiologists read each training image: `readerRule` says how their reads become one label
 * (majority: more than half of the image's readers; any: at least one). There is no patient id and no
 * view (the set is PA): each image is its own patient and study.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, type ReasonCounter } from '../../common/errors.js';
import type { CsvReader } from '../csv.js';
import type { Split } from '../mimic.js';
import type { Refusal, TableRow, TableRules } from '../table.js';
import type { DatasetAdapter } from './adapter.js';
import { datasetHead, type ImageLookup, IndexBuild, type ResolvedIndexOptions } from './common.js';
import { CHEXMASK_FILE, CHEXMASK_ID_COLUMN, datasetIdProblem, type ReaderRule } from './names.js';

/** Our five findings (FINDINGS order) as VinDr spells them. */
export const VINDR_FIVE = [
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Pleural effusion',
] as const;
const EDEMA = 3;
/** VinBigData's 15 classes; a row's `class_id` is the class's index here. */
export const VINDR_KAGGLE_CLASSES = [
  'Aortic enlargement',
  'Atelectasis',
  'Calcification',
  'Cardiomegaly',
  'Consolidation',
  'ILD',
  'Infiltration',
  'Lung Opacity',
  'Nodule/Mass',
  'Other lesion',
  'Pleural effusion',
  'Pleural thickening',
  'Pneumothorax',
  'Pulmonary fibrosis',
  'No finding',
] as const;

interface Reads {
  /** Readers of the image. */
  readers: Set<string>;
  /** Per finding, the readers who marked it. */
  positive: Set<string>[];
  split: Split;
  /** Findings (FINDINGS indices) the image's table has no column for: unknown, masked out. */
  unknown: readonly number[];
}

/** The image's five labels under the reader rule. */
export function vindrLabels(r: Reads, rule: ReaderRule): number[] {
  return r.positive.map((p) => (rule === 'any' ? (p.size > 0 ? 1 : 0) : 2 * p.size > r.readers.size ? 1 : 0));
}

/** Checks an image_id before the duplicate check. */
function vindrId(file: string, r: TableRow, col: number): Refusal | null {
  const bad = datasetIdProblem('vindr', 'image_id', r.cell(col));
  return bad ? { drop: 'bad-row', message: `${file}, row ${r.row}: ${bad}` } : null;
}

/** Refuses a blank `rad_id`: it would count as one more reader (named "") in the majority rule. */
function vindrReader(file: string, r: TableRow, c: { id: number; rad: number }): Refusal | null {
  if (c.rad < 0 || r.cell(c.rad) !== '') return null;
  return {
    drop: 'bad-row',
    message: `${file}, row ${r.row}, id ${r.cell(c.id)}, field "rad_id": blank (each read names its radiologist)`,
  };
}

/**
 * Refuses a Kaggle row whose `class_name` is not one of VinBigData's 15 (a typo or another dataset's
 * spelling would otherwise read as "not this finding"), or whose `class_id` names another class.
 */
function vindrClass(
  file: string,
  r: TableRow,
  c: { id: number; cls: number; clsId: number },
): Refusal | null {
  const where = `${file}, row ${r.row}, id ${r.cell(c.id)}`;
  const name = r.cell(c.cls);
  const j = (VINDR_KAGGLE_CLASSES as readonly string[]).indexOf(name);
  if (j < 0)
    return {
      drop: 'bad-label-value',
      message: `${where}, field "class_name": "${name}" is not a VinBigData class (${VINDR_KAGGLE_CLASSES.join(', ')})`,
    };
  if (c.clsId >= 0 && r.cell(c.clsId) !== String(j))
    return {
      drop: 'bad-label-value',
      message: `${where}, field "class_id": "${r.cell(c.clsId)}" is not the id of "${name}" (${j})`,
    };
  return null;
}

/**
 * The reads of `imageId` so far, `reader` among its readers (made on its first row, in `split`, with
 * the findings its table lacks).
 */
function readBy(
  reads: Map<string, Reads>,
  imageId: string,
  reader: string,
  split: Split,
  unknown: readonly number[],
): Reads {
  const r = reads.get(imageId) ?? {
    readers: new Set<string>(),
    positive: VINDR_FIVE.map(() => new Set<string>()),
    split,
    unknown,
  };
  reads.set(imageId, r);
  r.readers.add(reader);
  return r;
}

/** PhysioNet's wide tables: one row per image and reader (train) or per image (test, consensus). */
function wideRows(file: string, split: Split, reads: Map<string, Reads>, dropped: ReasonCounter) {
  return (csv: CsvReader): TableRules<string> => {
    const id = csv.col('image_id');
    const rad = csv.header.indexOf('rad_id');
    const cols = VINDR_FIVE.map((f) => csv.header.indexOf(f));
    // a finding without a column (Edema in a test table) is unknown, not negative
    const unknown = cols.flatMap((c, k) => (c < 0 ? [k] : []));
    const readerOf = (r: TableRow) => (rad >= 0 ? r.cell(rad) : 'consensus');
    return {
      keyName: 'image_id/rad_id',
      read: (r) =>
        vindrId(file, r, id) ??
        vindrReader(file, r, { id, rad }) ?? { key: `${r.cell(id)}/${readerOf(r)}`, value: readerOf(r) },
      take: (reader, r) => {
        const cells = cols.map((c) => (c < 0 ? '0' : r.cell(c)));
        const k = cells.findIndex((c) => c !== '0' && c !== '1' && c !== '0.0' && c !== '1.0');
        if (k >= 0) {
          dropped.add(
            'bad-label-value',
            `${file}, row ${r.row}, field "${VINDR_FIVE[k]}": "${cells[k]}" is not 0 or 1`,
          );
          return;
        }
        const image = readBy(reads, r.cell(id), reader, split, unknown);
        cells.forEach((c, j) => {
          if (Number(c) === 1) image.positive[j].add(reader);
        });
      },
    };
  };
}

/** Kaggle's long table: one row per box (or one "No finding" row per reader). */
function longRows(file: string, reads: Map<string, Reads>) {
  return (csv: CsvReader): TableRules<null> => {
    const c = {
      id: csv.col('image_id'),
      cls: csv.col('class_name'),
      clsId: csv.header.indexOf('class_id'),
      rad: csv.col('rad_id'),
    };
    return {
      // a box repeated verbatim is counted; two boxes of one class by one reader are one read
      keyName: 'row',
      read: (r) =>
        vindrId(file, r, c.id) ??
        vindrReader(file, r, c) ??
        vindrClass(file, r, c) ?? { key: r.values.map((v) => v.trim()).join(','), value: null },
      take: (_v, r) => {
        // Kaggle's release has no Edema class: it is masked out, never counted as a negative
        const image = readBy(reads, r.cell(c.id), r.cell(c.rad), 'train', [EDEMA]);
        const j = (VINDR_FIVE as readonly string[]).indexOf(r.cell(c.cls));
        if (j >= 0) image.positive[j].add(r.cell(c.rad));
      },
    };
  };
}

/** Reads whichever release is under the root into `reads`; says which one it was and the tables read. */
async function readRelease(
  build: IndexBuild,
  reads: Map<string, Reads>,
): Promise<{ release: 'physionet' | 'kaggle'; files: Record<string, string | null> }> {
  const { root } = build.opts;
  const physionet = join(root, 'annotations', 'image_labels_train.csv');
  const kaggle = join(root, 'train.csv');
  if (existsSync(physionet)) {
    const test = join(root, 'annotations', 'image_labels_test.csv');
    const wide = (split: Split) => [
      'image_id',
      ...VINDR_FIVE.filter((f) => f !== 'Edema' || split === 'train'),
    ];
    await build.readListing(physionet, wide('train'), wideRows(physionet, 'train', reads, build.dropped));
    // the official split's test images are that table's: without it the index had none, and a run
    // failed later on an empty test split
    if (!existsSync(test) && build.opts.split === 'official')
      throw new DataError(
        'missing-file',
        "the official split's test images are listed there (PhysioNet's annotations/); give it, or index with --split patient",
        { file: test },
      );
    if (existsSync(test))
      await build.readListing(test, wide('test'), wideRows(test, 'test', reads, build.dropped));
    return { release: 'physionet', files: { train: physionet, test: existsSync(test) ? test : null } };
  }
  if (existsSync(kaggle)) {
    await build.readListing(kaggle, ['image_id', 'class_name', 'rad_id'], longRows(kaggle, reads));
    return { release: 'kaggle', files: { train: kaggle } };
  }
  throw new DataError(
    'missing-file',
    'neither annotations/image_labels_train.csv (PhysioNet VinDr-CXR) nor train.csv (Kaggle VinBigData)',
    { file: root },
  );
}

/** The image of an entry: .dicom as released, or .dcm/.png where a user converted or renamed it. */
function vindrImage(root: string, folder: string, imageId: string): ImageLookup {
  return (path) =>
    ['dicom', 'dcm', 'png']
      .map((x) => `${folder}/${imageId}.${x}`)
      .find((p) => existsSync(join(root, p))) ?? {
      drop: 'image-missing',
      message: `${imageId}: no ${path} (or .dcm/.png) under ${root}`,
    };
}

async function buildVindrIndex(opts: ResolvedIndexOptions) {
  const build = new IndexBuild(opts);
  const reads = new Map<string, Reads>();
  const { release, files } = await readRelease(build, reads);
  for (const [imageId, r] of reads) {
    // an image's reads span several rows: its table and id name it
    const where = `${r.split === 'test' ? files.test : files.train}, id ${imageId}`;
    if (!build.keepsView('PA', where)) continue;
    const raw: (number | null)[] = vindrLabels(r, opts.readerRule);
    for (const k of r.unknown) raw[k] = null;
    const folder = r.split === 'test' ? 'test' : 'train';
    const draft = {
      dataset: 'vindr' as const,
      dicomId: imageId,
      subjectId: imageId,
      studyId: imageId,
      view: 'PA',
      split: r.split,
      path: `${folder}/${imageId}.dicom`,
    };
    const e = build.admit(draft, raw, vindrImage(opts.root, folder, imageId), where);
    // whatever the blank policy, a finding the table does not have is not a negative
    if (e) for (const k of r.unknown) e.labelMask[k] = 0;
  }
  if (opts.split === 'official' && release === 'physionet') build.carveValidate(opts.validateFraction);
  else build.splitByPatient();
  return build.finish(datasetHead('vindr', opts, files));
}

export const vindr: DatasetAdapter = {
  name: 'vindr',
  title: 'VinDr-CXR (PhysioNet annotations/ + train/ test/ DICOMs, or Kaggle VinBigData train.csv + train/)',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.vindr,
  chexmaskFile: CHEXMASK_FILE.vindr,
  buildIndex: buildVindrIndex,
};
