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
import { DataError, ReasonCounter } from '../../common/errors.js';
import { openCsv } from '../csv.js';
import { DuplicateRows } from '../duplicates.js';
import type { Split } from '../mimic.js';
import { applyLabelPolicy } from '../mimic-labels.js';
import type { DatasetAdapter } from './adapter.js';
import {
  carveValidate,
  finishIndex,
  type PendingEntry,
  type ResolvedIndexOptions,
  splitByPatient,
  viewKept,
} from './common.js';
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

/** PhysioNet's wide tables: one row per image and reader (train) or per image (test, consensus). */
async function readWide(
  file: string,
  split: Split,
  reads: Map<string, Reads>,
  dropped: ReasonCounter,
  duplicates: ReasonCounter,
): Promise<number> {
  const csv = await openCsv(file, [
    'image_id',
    ...VINDR_FIVE.filter((f) => f !== 'Edema' || split === 'train'),
  ]);
  const id = csv.col('image_id');
  const rad = csv.header.indexOf('rad_id');
  const cols = VINDR_FIVE.map((f) => csv.header.indexOf(f));
  const seen = new DuplicateRows(file, 'image_id/rad_id', csv.header, duplicates);
  let rows = 0;
  for await (const { row, values } of csv.records) {
    rows++;
    const imageId = (values[id] ?? '').trim();
    const bad = datasetIdProblem('vindr', 'image_id', imageId);
    if (bad) {
      dropped.add('bad-row', `${file}, row ${row}: ${bad}`);
      continue;
    }
    const reader = rad >= 0 ? (values[rad] ?? '').trim() : 'consensus';
    if (
      !seen.take(
        `${imageId}/${reader}`,
        row,
        values.map((v) => v.trim()),
      )
    )
      continue;
    const cells = cols.map((c) => (c < 0 ? '0' : (values[c] ?? '').trim()));
    const k = cells.findIndex((c) => c !== '0' && c !== '1' && c !== '0.0' && c !== '1.0');
    if (k >= 0) {
      dropped.add(
        'bad-label-value',
        `${file}, row ${row}, field "${VINDR_FIVE[k]}": "${cells[k]}" is not 0 or 1`,
      );
      continue;
    }
    const r = reads.get(imageId) ?? newReads(split);
    reads.set(imageId, r);
    r.readers.add(reader);
    cells.forEach((c, j) => {
      if (Number(c) === 1) r.positive[j].add(reader);
    });
  }
  return rows;
}

/** Kaggle's long table: one row per box (or one "No finding" row per reader). */
async function readLong(
  file: string,
  reads: Map<string, Reads>,
  dropped: ReasonCounter,
  duplicates: ReasonCounter,
) {
  const csv = await openCsv(file, ['image_id', 'class_name', 'rad_id']);
  const c = { id: csv.col('image_id'), cls: csv.col('class_name'), rad: csv.col('rad_id') };
  // a box repeated verbatim is counted; two boxes of one class by one reader are one read
  const seen = new DuplicateRows(file, 'row', csv.header, duplicates);
  let rows = 0;
  for await (const { row, values } of csv.records) {
    rows++;
    const imageId = (values[c.id] ?? '').trim();
    const bad = datasetIdProblem('vindr', 'image_id', imageId);
    if (bad) {
      dropped.add('bad-row', `${file}, row ${row}: ${bad}`);
      continue;
    }
    const cells = values.map((v) => v.trim());
    if (!seen.take(cells.join(','), row, cells)) continue;
    const reader = (values[c.rad] ?? '').trim();
    const r = reads.get(imageId) ?? newReads('train');
    reads.set(imageId, r);
    r.readers.add(reader);
    const j = (VINDR_FIVE as readonly string[]).indexOf((values[c.cls] ?? '').trim());
    if (j >= 0) r.positive[j].add(reader);
  }
  return rows;
}

async function buildVindrIndex(opts: ResolvedIndexOptions) {
  const { root } = opts;
  const dropped = new ReasonCounter();
  const duplicates = new ReasonCounter();
  const reads = new Map<string, Reads>();
  const physionet = join(root, 'annotations', 'image_labels_train.csv');
  const kaggle = join(root, 'train.csv');
  let files: Record<string, string | null>;
  let rows = 0;
  if (existsSync(physionet)) {
    const test = join(root, 'annotations', 'image_labels_test.csv');
    rows += await readWide(physionet, 'train', reads, dropped, duplicates);
    if (existsSync(test)) rows += await readWide(test, 'test', reads, dropped, duplicates);
    files = { train: physionet, test: existsSync(test) ? test : null };
  } else if (existsSync(kaggle)) {
    rows += await readLong(kaggle, reads, dropped, duplicates);
    files = { train: kaggle };
  } else
    throw new DataError(
      'missing-file',
      'neither annotations/image_labels_train.csv (PhysioNet VinDr-CXR) nor train.csv (Kaggle VinBigData)',
      { file: root },
    );
  const hasEdema = files.train === physionet;
  const viewsSeen: Record<string, number> = {};
  const pending: PendingEntry[] = [];
  for (const [imageId, r] of reads) {
    if (!viewKept('PA', opts, viewsSeen, dropped)) continue;
    const raw: (number | null)[] = vindrLabels(r, opts.readerRule);
    if (!hasEdema) raw[EDEMA] = null;
    if (opts.requirePositive && !raw.includes(1)) {
      dropped.add('no-positive-label');
      continue;
    }
    const folder = r.split === 'test' ? 'test' : 'train';
    let path = `${folder}/${imageId}.dicom`;
    if (opts.checkFiles) {
      const found = ['dicom', 'dcm', 'png']
        .map((x) => `${folder}/${imageId}.${x}`)
        .find((p) => existsSync(join(root, p)));
      if (!found) {
        dropped.add('image-missing', `${imageId}: no ${path} (or .dcm/.png) under ${root}`);
        continue;
      }
      path = found;
    }
    const { labels, labelMask } = applyLabelPolicy(raw, opts);
    if (!hasEdema) labelMask[EDEMA] = 0;
    pending.push({
      dataset: 'vindr',
      dicomId: imageId,
      subjectId: imageId,
      studyId: imageId,
      view: 'PA',
      split: r.split,
      path,
      labels,
      labelMask,
      rawLabels: raw,
    });
  }
  if (opts.split === 'official' && hasEdema) carveValidate(pending, opts.validateFraction, opts.splitSeed);
  else splitByPatient(pending, opts);
  return finishIndex('vindr', opts, files, rows, pending, viewsSeen, dropped, duplicates);
}

export const vindr: DatasetAdapter = {
  name: 'vindr',
  title: 'VinDr-CXR (PhysioNet annotations/ + train/ test/ DICOMs, or Kaggle VinBigData train.csv + train/)',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.vindr,
  chexmaskFile: CHEXMASK_FILE.vindr,
  buildIndex: buildVindrIndex,
};
