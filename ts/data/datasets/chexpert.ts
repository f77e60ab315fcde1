/**
 * CheXpert v1.0 / v1.0-small: train.csv and valid.csv under the dataset folder, images at
 * {train|valid}/patientNNNNN/studyK/viewV_{frontal|lateral}.jpg. `Path` carries the root folder
 * (CheXpert-v1.0-small/…), which is stripped: the rest is both the image path and CheXmask's id.
 * Labels use the same five column names and coding (1, 0, -1, blank) as MIMIC's chexpert table, under
 * the same uncertain/blank policies. Official split: train.csv → train (validate carved by patient),
 * valid.csv → test (the public test labels are not part of v1.0).
 */
import { join } from 'node:path';
import { FINDINGS } from '../../common/labels.js';
import { type CsvReader, findCsv } from '../csv.js';
import type { Split } from '../mimic.js';
import { chexpertCodedLabels } from '../mimic-labels.js';
import { shortRow, type TableRules } from '../table.js';
import type { DatasetAdapter } from './adapter.js';
import { datasetHead, IndexBuild, type ResolvedIndexOptions } from './common.js';
import { CHEXMASK_FILE, CHEXMASK_ID_COLUMN, datasetIdProblem } from './names.js';

export const CHEXPERT_TABLE_COLUMNS = ['Path', 'Frontal/Lateral', 'AP/PA', ...FINDINGS] as const;
/** The root folder CheXpert's own CSVs put in front of every path. */
const ROOT_PREFIX = /^CheXpert-v1\.0[A-Za-z0-9_-]*\//;

/** CheXmask's id of a CheXpert `Path` cell: the path without its CheXpert-v1.0[-small]/ folder. */
export function chexpertId(path: string): string {
  return path.trim().replace(ROOT_PREFIX, '');
}

/** One of CheXpert's two tables, whose rows all go to `split` (validate is carved from train later). */
function chexpertRows(build: IndexBuild, table: string, split: Split) {
  return (csv: CsvReader): TableRules<string> => {
    const c = { path: csv.col('Path'), fl: csv.col('Frontal/Lateral'), appa: csv.col('AP/PA') };
    const cols = FINDINGS.map((f) => csv.col(f));
    return {
      keyName: 'Path',
      read: (r) => {
        const id = chexpertId(r.values[c.path] ?? '');
        const short = shortRow(`${table}, row ${r.row}, id ${id}`, r, csv.header);
        if (short) return { drop: 'bad-row', message: short };
        const idBad = datasetIdProblem('chexpert', 'Path', id);
        if (idBad) return { drop: 'bad-row', message: `${table}, row ${r.row}: ${idBad}` };
        return { key: id, value: id };
      },
      take: (id, r) => {
        const where = `${table}, row ${r.row}, id ${id}`;
        const raw = chexpertCodedLabels(r.values, cols, where);
        if (typeof raw === 'string') {
          build.dropped.add('bad-label-value', raw);
          return;
        }
        const view = r.cell(c.fl) === 'Lateral' ? 'LATERAL' : r.cell(c.appa);
        if (!build.keepsView(view, where)) return;
        const [, patient, study] = /patient(\d+)\/study(\d+)/.exec(id) as RegExpExecArray;
        const draft = {
          dataset: 'chexpert' as const,
          dicomId: id,
          subjectId: patient,
          studyId: study,
          view,
          split,
          path: id,
        };
        build.admit(draft, raw, build.onDisk(where), where);
      },
    };
  };
}

async function buildChexpertIndex(opts: ResolvedIndexOptions) {
  const build = new IndexBuild(opts);
  const files: Record<string, string | null> = {};
  for (const [name, split] of [
    ['train', 'train'],
    ['valid', 'test'],
  ] as const) {
    files[name] = findCsv(join(opts.root, name));
    await build.readListing(files[name], CHEXPERT_TABLE_COLUMNS, chexpertRows(build, files[name], split));
  }
  if (opts.split === 'official') build.carveValidate(opts.validateFraction);
  else build.splitByPatient();
  return build.finish(datasetHead('chexpert', opts, files));
}

export const chexpert: DatasetAdapter = {
  name: 'chexpert',
  title: 'CheXpert v1.0 / v1.0-small (train.csv, valid.csv, train/ and valid/)',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.chexpert,
  chexmaskFile: CHEXMASK_FILE.chexpert,
  buildIndex: buildChexpertIndex,
};
