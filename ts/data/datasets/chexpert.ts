/**
 * CheXpert v1.0 / v1.0-small: train.csv and valid.csv under the dataset folder, images at
 * {train|valid}/patientNNNNN/studyK/viewV_{frontal|lateral}.jpg. `Path` carries the root folder
 * (CheXpert-v1.0-small/…), which is stripped: the rest is both the image path and CheXmask's id.
 * Labels use the same five column names and coding (1, 0, -1, blank) as MIMIC's chexpert table, under
 * the same uncertain/blank policies. Official split: train.csv → train (validate carved by patient),
 * valid.csv → test (the public test labels are not part of v1.0).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ReasonCounter } from '../../common/errors.js';
import { FINDINGS } from '../../common/labels.js';
import { findCsv, openCsv } from '../csv.js';
import { DuplicateRows } from '../duplicates.js';
import type { Split } from '../mimic.js';
import { applyLabelPolicy, parseLabel } from '../mimic-labels.js';
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

export const CHEXPERT_TABLE_COLUMNS = ['Path', 'Frontal/Lateral', 'AP/PA', ...FINDINGS] as const;
/** The root folder CheXpert's own CSVs put in front of every path. */
const ROOT_PREFIX = /^CheXpert-v1\.0[A-Za-z0-9_-]*\//;

/** CheXmask's id of a CheXpert `Path` cell: the path without its CheXpert-v1.0[-small]/ folder. */
export function chexpertId(path: string): string {
  return path.trim().replace(ROOT_PREFIX, '');
}

async function buildChexpertIndex(opts: ResolvedIndexOptions) {
  const { root } = opts;
  const dropped = new ReasonCounter();
  const duplicates = new ReasonCounter();
  const viewsSeen: Record<string, number> = {};
  const pending: PendingEntry[] = [];
  const files: Record<string, string | null> = {};
  let rows = 0;
  for (const [name, split] of [
    ['train', 'train'],
    ['valid', 'test'],
  ] as const) {
    const table = findCsv(join(root, name));
    files[name] = table;
    const csv = await openCsv(table, CHEXPERT_TABLE_COLUMNS);
    const c = { path: csv.col('Path'), fl: csv.col('Frontal/Lateral'), appa: csv.col('AP/PA') };
    const cols = FINDINGS.map((f) => csv.col(f));
    const seen = new DuplicateRows(table, 'Path', csv.header, duplicates);
    for await (const { row, values } of csv.records) {
      rows++;
      const id = chexpertId(values[c.path] ?? '');
      const where = `${table}, row ${row}, id ${id}`;
      if (values.length < csv.header.length) {
        dropped.add('bad-row', `${where}: ${values.length} field(s), the header has ${csv.header.length}`);
        continue;
      }
      const idBad = datasetIdProblem('chexpert', 'Path', id);
      if (idBad) {
        dropped.add('bad-row', `${table}, row ${row}: ${idBad}`);
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
      const raw = cols.map((k) => parseLabel(values[k]));
      const bad = raw.findIndex((v) => v !== null && (Number.isNaN(v) || ![1, 0, -1].includes(v)));
      if (bad >= 0) {
        dropped.add(
          'bad-label-value',
          `${where}, field "${FINDINGS[bad]}": "${values[cols[bad]]}" is not 1, 0, -1 or blank`,
        );
        continue;
      }
      const fl = (values[c.fl] ?? '').trim();
      const view = fl === 'Lateral' ? 'LATERAL' : (values[c.appa] ?? '').trim();
      if (!viewKept(view, opts, viewsSeen, dropped)) continue;
      if (opts.requirePositive && !raw.includes(1)) {
        dropped.add('no-positive-label');
        continue;
      }
      if (opts.checkFiles && !existsSync(join(root, id))) {
        dropped.add('image-missing', `${where}: ${join(root, id)} does not exist`);
        continue;
      }
      const [, patient, study] = /patient(\d+)\/study(\d+)/.exec(id) as RegExpExecArray;
      const { labels, labelMask } = applyLabelPolicy(raw, opts);
      pending.push({
        dataset: 'chexpert',
        dicomId: id,
        subjectId: patient,
        studyId: study,
        view,
        split: split as Split,
        path: id,
        labels,
        labelMask,
        rawLabels: raw,
      });
    }
  }
  if (opts.split === 'official') carveValidate(pending, opts.validateFraction, opts.splitSeed);
  else splitByPatient(pending, opts);
  return finishIndex('chexpert', opts, files, rows, pending, viewsSeen, dropped, duplicates);
}

export const chexpert: DatasetAdapter = {
  name: 'chexpert',
  title: 'CheXpert v1.0 / v1.0-small (train.csv, valid.csv, train/ and valid/)',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.chexpert,
  chexmaskFile: CHEXMASK_FILE.chexpert,
  buildIndex: buildChexpertIndex,
};
