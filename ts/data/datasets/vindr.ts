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
import { CHEXMASK_FILE, CHEXMASK_ID_COLUMN, datasetIdProblem } from './names.js';

/** Our five findings (FINDINGS order) as VinDr spells them. */
export const VINDR_FIVE = [
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Pleural effusion',
] as const;
const EDEMA = 3;

interface Reads {
  /** Readers of the image. */
  readers: Set<string>;
  /** Per finding, the readers who marked it. */
  positive: Set<string>[];
  split: Split;
}

function newReads(split: Split): Reads {
  return { readers: new Set(), positive: VINDR_FIVE.map(() => new Set<string>()), split };
}

/** The image's five labels under the reader rule. */
export function vindrLabels(r: Reads, rule: 'majority' | 'any'): number[] {
  return r.positive.map((p) => (rule === 'any' ? (p.size > 0 ? 1 : 0) : 2 * p.size > r.readers.size ? 1 : 0));
}

/** Checks an image_id before the duplicate check. */
function vindrId(file: string, r: TableRow, col: number): Refusal | null {
  const bad = datasetIdProblem('vindr', 'image_id', r.cell(col));
  return bad ? { drop: 'bad-row', message: `${file}, row ${r.row}: ${bad}` } : null;
}

/** The reads of `imageId` so far, `reader` among its readers (made on its first row, in `split`). */
function readBy(reads: Map<string, Reads>, imageId: string, reader: string, split: Split): Reads {
  const r = reads.get(imageId) ?? newReads(split);
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
    const readerOf = (r: TableRow) => (rad >= 0 ? r.cell(rad) : 'consensus');
    return {
      keyName: 'image_id/rad_id',
      read: (r) => vindrId(file, r, id) ?? { key: `${r.cell(id)}/${readerOf(r)}`, value: readerOf(r) },
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
        const image = readBy(reads, r.cell(id), reader, split);
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
    const c = { id: csv.col('image_id'), cls: csv.col('class_name'), rad: csv.col('rad_id') };
    return {
      // a box repeated verbatim is counted; two boxes of one class by one reader are one read
      keyName: 'row',
      read: (r) => vindrId(file, r, c.id) ?? { key: r.values.map((v) => v.trim()).join(','), value: null },
      take: (_v, r) => {
        const image = readBy(reads, r.cell(c.id), r.cell(c.rad), 'train');
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
  // Kaggle's release has no Edema class: it is masked out, never counted as a negative
  const hasEdema = release === 'physionet';
  for (const [imageId, r] of reads) {
    // an image's reads span several rows: its table and id name it
    const where = `${r.split === 'test' ? files.test : files.train}, id ${imageId}`;
    if (!build.keepsView('PA', where)) continue;
    const raw: (number | null)[] = vindrLabels(r, opts.readerRule);
    if (!hasEdema) raw[EDEMA] = null;
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
    if (e && !hasEdema) e.labelMask[EDEMA] = 0;
  }
  if (opts.split === 'official' && hasEdema) build.carveValidate(opts.validateFraction);
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
