/**
 * PadChest (BIMCV): PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv[.gz] and the 16-bit PNGs at
 * {ImageDir}/{ImageID}. `Labels` is a Python list literal of report-mined findings, positives only, so
 * every label counts (no uncertainty); the five are matched on exact vocabulary strings (see PADCHEST_FIVE).
 * There is no official split: it is always the seeded split by PatientID.
 */
import { join } from 'node:path';
import { findCsv } from '../csv.js';
import type { DatasetAdapter } from './adapter.js';
import { datasetHead, IndexBuild, type ResolvedIndexOptions } from './common.js';
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

const PLAIN_ID = /^[A-Za-z0-9_.-]{1,200}$/;

async function buildPadchestIndex(opts: ResolvedIndexOptions) {
  const table = findCsv(join(opts.root, PADCHEST_TABLE));
  const build = new IndexBuild(opts);
  await build.readListing<string>(table, PADCHEST_COLUMNS, (csv) => {
    const c = Object.fromEntries(PADCHEST_COLUMNS.map((k) => [k, csv.col(k)])) as Record<
      (typeof PADCHEST_COLUMNS)[number],
      number
    >;
    return {
      keyName: 'ImageID',
      read: (r) => {
        const id = r.cell(c.ImageID);
        const idBad = datasetIdProblem('padchest', 'ImageID', id);
        if (idBad) return { drop: 'bad-row', message: `${table}, row ${r.row}: ${idBad}` };
        const [dir, patient, study] = [r.cell(c.ImageDir), r.cell(c.PatientID), r.cell(c.StudyID)];
        if (!/^\d{1,3}$/.test(dir) || !PLAIN_ID.test(patient) || !PLAIN_ID.test(study))
          return {
            drop: 'bad-row',
            message: `${table}, row ${r.row}, id ${id}: ImageDir "${dir}", PatientID "${patient}" or StudyID "${study}" is not a plain id`,
          };
        return { key: id, value: id };
      },
      take: (id, r) => {
        const where = `${table}, row ${r.row}, id ${id}`;
        if (!build.keepsView(r.cell(c.Projection), where)) return;
        const items = padchestLabelList(r.cell(c.Labels));
        if (!items) {
          build.dropped.add(
            'no-labels',
            `${where}, field "Labels": "${r.cell(c.Labels)}" is not a label list`,
          );
          return;
        }
        const draft = {
          dataset: 'padchest' as const,
          dicomId: id,
          subjectId: r.cell(c.PatientID),
          studyId: r.cell(c.StudyID),
          view: r.cell(c.Projection),
          split: 'train' as const,
          path: `${Number(r.cell(c.ImageDir))}/${id}`,
        };
        build.admit(draft, padchestLabels(items), build.onDisk(where), where);
      },
    };
  });
  build.splitByPatient();
  return build.finish(datasetHead('padchest', opts, { labels: table }));
}

export const padchest: DatasetAdapter = {
  name: 'padchest',
  title: 'PadChest (PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv[.gz], {ImageDir}/{ImageID} PNGs)',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.padchest,
  chexmaskFile: CHEXMASK_FILE.padchest,
  buildIndex: buildPadchestIndex,
};
