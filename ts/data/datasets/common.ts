/** What every dataset adapter shares: its options, the validate carve-out, and the summary it returns. */
import { z } from 'zod';
import type { ReasonCounter } from '../../common/errors.js';
import {
  type IndexEntry,
  IndexOptionsSchema,
  type IndexSummary,
  patientSplit,
  type Split,
  tallyIndex,
} from '../mimic.js';
import { DATASETS, type DatasetName } from './names.js';

export const DatasetIndexOptionsSchema = IndexOptionsSchema.extend({
  dataset: z.enum(DATASETS).default('mimic'),
  /**
   * Datasets whose official split has no validation set (nih14: train_val/test; chexpert: train/valid):
   * the fraction of the official training patients moved to validate, by a seeded patient shuffle.
   */
  validateFraction: z.number().min(0).max(0.9).default(0.1),
  /** vindr: how several radiologists' reads of an image become one label. */
  readerRule: z.enum(['majority', 'any']).default('majority'),
});
export type DatasetIndexOptions = z.input<typeof DatasetIndexOptionsSchema>;
export type ResolvedIndexOptions = z.output<typeof DatasetIndexOptionsSchema>;

/** An entry before the tally: its raw labels (1, 0, -1, null) ride along for the per-label counts. */
export type PendingEntry = IndexEntry & { rawLabels: (number | null)[] };

/** Moves a seeded `fraction` of the train patients to validate (whole patients, so no patient is in both). */
export function carveValidate(pending: PendingEntry[], fraction: number, seed: number): void {
  if (!(fraction > 0)) return;
  const subjects = pending.filter((e) => e.split === 'train').map((e) => e.subjectId);
  const m = patientSplit(subjects, seed, [1 - fraction, fraction, 0]);
  for (const e of pending) if (e.split === 'train' && m.get(e.subjectId) === 'validate') e.split = 'validate';
}

/** The seeded patient-level split of every entry (options.split = 'patient'). */
export function splitByPatient(pending: PendingEntry[], opts: ResolvedIndexOptions): void {
  const m = patientSplit(
    pending.map((e) => e.subjectId),
    opts.splitSeed,
    opts.splitFractions,
  );
  for (const e of pending) e.split = m.get(e.subjectId) as Split;
}

/** Tallies the pending entries into the index summary every dataset returns. */
export function finishIndex(
  dataset: DatasetName,
  opts: ResolvedIndexOptions,
  files: Record<string, string | null>,
  rows: number,
  pending: PendingEntry[],
  viewsSeen: Record<string, number>,
  dropped: ReasonCounter,
  duplicates: ReasonCounter,
): { entries: IndexEntry[]; summary: IndexSummary } {
  const { entries, perSplit, perView, perLabel, subjects, studies, patientsInSeveralSplits } =
    tallyIndex(pending);
  const { root, dataset: _d, validateFraction, readerRule, ...rest } = opts;
  return {
    entries,
    summary: {
      dataset,
      root,
      options: {
        ...rest,
        validateFraction,
        ...(dataset === 'vindr' ? { readerRule } : {}),
      } as IndexSummary['options'],
      files,
      metadataRows: rows,
      kept: entries.length,
      perSplit,
      perView,
      viewsSeen,
      perLabel,
      subjects: subjects.size,
      studies: studies.size,
      dropped: dropped.toJSON(),
      duplicates: duplicates.toJSON(),
      patientsInSeveralSplits,
    },
  };
}

/** Counts a view value (blank shown as "(blank)") and says whether the options keep it. */
export function viewKept(
  view: string,
  opts: ResolvedIndexOptions,
  seen: Record<string, number>,
  dropped: ReasonCounter,
): boolean {
  const key = view === '' ? '(blank)' : view;
  seen[key] = (seen[key] ?? 0) + 1;
  if (opts.views.includes(view)) return true;
  dropped.add(`view-not-selected:${key}`);
  return false;
}
