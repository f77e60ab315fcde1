/**
 * PadChest (BIMCV): PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv[.gz] and the 16-bit PNGs at
 * {ImageDir}/{ImageID}. `Labels` is a Python list literal of report-mined findings, positives only, so
 * every label counts (no uncertainty); the five are matched on exact vocabulary strings (see PADCHEST_FIVE).
 * There is no official split: it is always the seeded split by PatientID.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ReasonCounter } from '../../common/errors.js';
import { findCsv, openCsv } from '../csv.js';
import { DuplicateRows } from '../duplicates.js';
import { applyLabelPolicy } from '../mimic-labels.js';
import type { DatasetAdapter } from './adapter.js';
import {
  finishIndex,
  type PendingEntry,
  type ResolvedIndexOptions,
  splitByPatient,
  viewKept,
} from './common.js';
import { CHEXMASK_FILE, CHEXMASK_ID_COLUMN, datasetIdProblem } from './names.js';

export const PADCHEST_TABLE = 'PADCHEST_chest_x_ray_images_labels_160K_01.02.19';
export const PADCHEST_COLUMNS = [
  'ImageID',
  'ImageDir',
  'StudyID',
  'PatientID',
  'Projection',
  'Labels',
] as const;

/**
 * The PadChest labels that mean each of our five findings (FINDINGS order). `pericardial effusion`
 * is not pleural effusion, so no substring matching.
 */
export const PADCHEST_FIVE: readonly (readonly string[])[] = [
  [
    'atelectasis',
    'laminar atelectasis',
    'lobar atelectasis',
    'segmental atelectasis',
    'round atelectasis',
    'total atelectasis',
    'atelectasis basal',
  ],
  ['cardiomegaly'],
  ['consolidation'],
  ['pulmonary edema'],
  ['pleural effusion', 'loculated pleural effusion', 'loculated fissural effusion'],
];

/** The items of a `Labels` cell (`['a', ' b']`), stripped; null when the cell is blank/nan or not a list. */
export function padchestLabelList(cell: string): string[] | null {
  const s = cell.trim();
  if (!s.startsWith('[') || !s.endsWith(']')) return null;
  const items: string[] = [];
  for (const m of s.slice(1, -1).matchAll(/'([^']*)'|"([^"]*)"/g)) items.push((m[1] ?? m[2]).trim());
  return items;
}

export function padchestLabels(items: readonly string[]): number[] {
  return PADCHEST_FIVE.map((names) => (items.some((t) => names.includes(t)) ? 1 : 0));
}

async function buildPadchestIndex(opts: ResolvedIndexOptions) {
  const { root } = opts;
  const table = findCsv(join(root, PADCHEST_TABLE));
  const dropped = new ReasonCounter();
  const duplicates = new ReasonCounter();
  const csv = await openCsv(table, PADCHEST_COLUMNS);
  const c = Object.fromEntries(PADCHEST_COLUMNS.map((k) => [k, csv.col(k)])) as Record<
    (typeof PADCHEST_COLUMNS)[number],
    number
  >;
  const seen = new DuplicateRows(table, 'ImageID', csv.header, duplicates);
  const viewsSeen: Record<string, number> = {};
  const pending: PendingEntry[] = [];
  let rows = 0;
  for await (const { row, values } of csv.records) {
    rows++;
    const cell = (i: number) => (values[i] ?? '').trim();
    const id = cell(c.ImageID);
    const where = `${table}, row ${row}, id ${id}`;
    const idBad = datasetIdProblem('padchest', 'ImageID', id);
    if (idBad) {
      dropped.add('bad-row', `${table}, row ${row}: ${idBad}`);
      continue;
    }
    const dir = cell(c.ImageDir);
    const patient = cell(c.PatientID);
    const study = cell(c.StudyID);
    if (
      !/^\d{1,3}$/.test(dir) ||
      !/^[A-Za-z0-9_.-]{1,200}$/.test(patient) ||
      !/^[A-Za-z0-9_.-]{1,200}$/.test(study)
    ) {
      dropped.add(
        'bad-row',
        `${where}: ImageDir "${dir}", PatientID "${patient}" or StudyID "${study}" is not a plain id`,
      );
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
    if (!viewKept(cell(c.Projection), opts, viewsSeen, dropped)) continue;
    const items = padchestLabelList(cell(c.Labels));
    if (!items) {
      dropped.add('no-labels', `${where}, field "Labels": "${cell(c.Labels)}" is not a label list`);
      continue;
    }
    const raw = padchestLabels(items);
    if (opts.requirePositive && !raw.includes(1)) {
      dropped.add('no-positive-label');
      continue;
    }
    const path = `${Number(dir)}/${id}`;
    if (opts.checkFiles && !existsSync(join(root, path))) {
      dropped.add('image-missing', `${where}: ${join(root, path)} does not exist`);
      continue;
    }
    const { labels, labelMask } = applyLabelPolicy(raw, opts);
    pending.push({
      dataset: 'padchest',
      dicomId: id,
      subjectId: patient,
      studyId: study,
      view: cell(c.Projection),
      split: 'train',
      path,
      labels,
      labelMask,
      rawLabels: raw,
    });
  }
  splitByPatient(pending, opts);
  return finishIndex('padchest', opts, { labels: table }, rows, pending, viewsSeen, dropped, duplicates);
}

export const padchest: DatasetAdapter = {
  name: 'padchest',
  title: 'PadChest (PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv[.gz], {ImageDir}/{ImageID} PNGs)',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.padchest,
  chexmaskFile: CHEXMASK_FILE.padchest,
  buildIndex: buildPadchestIndex,
};
