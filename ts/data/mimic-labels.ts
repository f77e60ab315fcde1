/** The chexpert CSV read into raw labels per study, and the uncertain/blank policies that turn them into 0/1 + mask. */

import type { ReasonCounter } from '../common/errors.js';
import { FINDINGS } from '../common/labels.js';
import { idsProblem } from './mimic-ids.js';
import { readTable, shortRow } from './table.js';

export const CHEXPERT_COLUMNS = ['subject_id', 'study_id', ...FINDINGS] as const;

/** 1, 0 or -1 as a plain decimal ("1", "1.0", "-1.00"); the tables write 1.0, 0.0, -1.0. */
const LABEL_RE = /^-?[01](?:\.0*)?$/;

/**
 * Raw label cell: 1, 0 or -1, null when blank/nan, NaN otherwise (refused by the caller). Number()
 * would also read "0x1", "1e0", "+1", ".1e1" and "0.99999999999999999" as a positive.
 */
export function parseLabel(cell: string | undefined): number | null {
  const s = (cell ?? '').trim();
  if (s === '' || s.toLowerCase() === 'nan') return null;
  return LABEL_RE.test(s) ? Number(s) || 0 : Number.NaN; // "-0.0" is 0, not -0
}

/**
 * The five raw labels of a row coded the CheXpert way (MIMIC's chexpert table, CheXpert's own CSVs), read
 * from `cols` (FINDINGS order), or the message naming the first cell that is not 1, 0, -1 or blank.
 */
export function chexpertCodedLabels(
  values: readonly string[],
  cols: readonly number[],
  where: string,
): (number | null)[] | string {
  const labels = cols.map((c) => parseLabel(values[c]));
  const bad = labels.findIndex((v) => v !== null && (Number.isNaN(v) || ![1, 0, -1].includes(v)));
  if (bad < 0) return labels;
  return `${where}, field "${FINDINGS[bad]}": "${values[cols[bad]]}" is not 1, 0, -1 or blank`;
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
  await readTable<(number | null)[]>(chexPath, CHEXPERT_COLUMNS, { dropped, duplicates }, (csv) => {
    const subj = csv.col('subject_id');
    const stud = csv.col('study_id');
    const cols = FINDINGS.map((f) => csv.col(f));
    return {
      keyName: 'study',
      read: (r) => {
        // a short row (e.g. one field) would otherwise read as "all labels blank"
        const short = shortRow(`${chexPath}, row ${r.row}`, r, csv.header);
        if (short) return { drop: 'short-chexpert-row', message: short };
        const idBad = idsProblem({ subject_id: r.cell(subj), study_id: r.cell(stud) });
        if (idBad) return { drop: 'bad-chexpert-id', message: `${chexPath}, row ${r.row}: ${idBad}` };
        const labels = chexpertCodedLabels(r.values, cols, `${chexPath}, row ${r.row}`);
        if (typeof labels === 'string') return { drop: 'bad-label-value', message: labels };
        return { key: `${r.cell(subj)}/${r.cell(stud)}`, value: labels };
      },
      take: (labels, _r, key) => labelsByStudy.set(key, labels),
    };
  });
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
