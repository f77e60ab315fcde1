/** The chexpert CSV read into raw labels per study, and the uncertain/blank policies that turn them into 0/1 + mask. */

import type { ReasonCounter } from '../common/errors.js';
import { FINDINGS } from '../common/labels.js';
import { openCsv } from './csv.js';
import { DuplicateRows } from './duplicates.js';
import { idsProblem } from './mimic-ids.js';

export const CHEXPERT_COLUMNS = ['subject_id', 'study_id', ...FINDINGS] as const;

/** Raw label cell: number, null when blank/nan, NaN when not a number (refused by the caller). */
export function parseLabel(cell: string | undefined): number | null {
  const s = (cell ?? '').trim();
  if (s === '' || s.toLowerCase() === 'nan') return null;
  const v = Number(s);
  return Number.isFinite(v) ? v : Number.NaN;
}

/**
 * Raw labels (1, 0, -1, null; FINDINGS order) keyed "subject/study"; bad rows are counted in `dropped`,
 * identical repeated rows in `duplicates`; a repeated study with other values throws (DuplicateRows).
 */
export async function readStudyLabels(
  chexPath: string,
  dropped: ReasonCounter,
  duplicates: ReasonCounter,
): Promise<Map<string, (number | null)[]>> {
  const labelsByStudy = new Map<string, (number | null)[]>();
  const csv = await openCsv(chexPath, CHEXPERT_COLUMNS);
  const seen = new DuplicateRows(chexPath, 'study', csv.header, duplicates);
  const subj = csv.col('subject_id');
  const stud = csv.col('study_id');
  const cols = FINDINGS.map((f) => csv.col(f));
  for await (const { row, values } of csv.records) {
    // a short row (e.g. one field) would otherwise read as "all labels blank"
    if (values.length < csv.header.length) {
      dropped.add(
        'short-chexpert-row',
        `${chexPath}, row ${row}: ${values.length} field(s), the header has ${csv.header.length}`,
      );
      continue;
    }
    const idBad = idsProblem({ subject_id: values[subj]?.trim(), study_id: values[stud]?.trim() });
    if (idBad) {
      dropped.add('bad-chexpert-id', `${chexPath}, row ${row}: ${idBad}`);
      continue;
    }
    const labels = cols.map((c) => parseLabel(values[c]));
    const bad = labels.findIndex((v) => v !== null && (Number.isNaN(v) || ![1, 0, -1].includes(v)));
    if (bad >= 0) {
      dropped.add(
        'bad-label-value',
        `${chexPath}, row ${row}, field "${FINDINGS[bad]}": "${values[cols[bad]]}" is not 1, 0, -1 or blank`,
      );
      continue;
    }
    const key = `${values[subj]!.trim()}/${values[stud]!.trim()}`;
    if (
      !seen.take(
        key,
        row,
        values.map((v) => v.trim()),
      )
    )
      continue;
    labelsByStudy.set(key, labels);
  }
  return labelsByStudy;
}

/** -1 and blank become 0/1 and a mask bit as the index options say; 1 and 0 always count. */
export function applyLabelPolicy(
  rawLabels: (number | null)[],
  policy: { uncertain: 'zeros' | 'ones' | 'ignore'; blank: 'zeros' | 'ignore' },
): { labels: number[]; labelMask: number[] } {
  const labels: number[] = [];
  const labelMask: number[] = [];
  for (const v of rawLabels) {
    if (v === 1 || v === 0) {
      labels.push(v);
      labelMask.push(1);
    } else if (v === -1) {
      labels.push(policy.uncertain === 'ones' ? 1 : 0);
      labelMask.push(policy.uncertain === 'ignore' ? 0 : 1);
    } else {
      labels.push(0);
      labelMask.push(policy.blank === 'ignore' ? 0 : 1);
    }
  }
  return { labels, labelMask };
}
