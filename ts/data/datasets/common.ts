/**
 * What every dataset's index builder shares: its options, the build that collects kept entries and the
 * counts of what was dropped, the last steps every kept row passes, the splits, and the summary.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ReasonCounter } from '../../common/errors.js';
import { FINDINGS } from '../../common/labels.js';
import { mulberry32 } from '../../common/random.js';
import type { CsvReader } from '../csv.js';
import { type IndexEntry, IndexOptionsSchema, type IndexSummary, type Split } from '../mimic.js';
import { applyLabelPolicy } from '../mimic-labels.js';
import { type Refusal, readTable, type TableRules } from '../table.js';
import { DATASETS, type DatasetName, READER_RULES } from './names.js';

export const DatasetIndexOptionsSchema = IndexOptionsSchema.extend({
  dataset: z.enum(DATASETS).default('mimic'),
  /**
   * Datasets whose official split has no validation set (nih14: train_val/test; chexpert: train/valid):
   * the fraction of the official training patients moved to validate, by a seeded patient shuffle.
   */
  validateFraction: z.number().min(0).max(0.9).default(0.1),
  /** vindr: how several radiologists' reads of an image become one label. */
  readerRule: z.enum(READER_RULES).default('majority'),
});
export type DatasetIndexOptions = z.input<typeof DatasetIndexOptionsSchema>;
export type ResolvedIndexOptions = z.output<typeof DatasetIndexOptionsSchema>;
/** The options every builder reads (MIMIC's own builder has no dataset, validateFraction or readerRule). */
type BuildOptions = z.output<typeof IndexOptionsSchema>;

/** An entry before the tally: its raw labels (1, 0, -1, null) ride along for the per-label counts. */
export type PendingEntry = IndexEntry & { rawLabels: (number | null)[] };
/** An entry as a table row gives it, before the label policy. */
export type EntryDraft = Omit<IndexEntry, 'labels' | 'labelMask'>;
/** Where the image of a draft is on disk (its path, relative to the root), or why it is missing. */
export type ImageLookup = (path: string) => string | Refusal;

/** Seeded patient-level split: subjects are shuffled with the seed and cut by the fractions. */
export function patientSplit(
  subjects: Iterable<string>,
  seed: number,
  fractions: [number, number, number],
): Map<string, Split> {
  const list = [...new Set(subjects)].sort();
  const rnd = mulberry32(seed ^ 0x5eed);
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  const total = fractions[0] + fractions[1] + fractions[2];
  if (!(total > 0)) throw new RangeError('splitFractions must not all be zero');
  const nTrain = Math.round((list.length * fractions[0]) / total);
  const nVal = Math.round((list.length * fractions[1]) / total);
  const m = new Map<string, Split>();
  list.forEach((s, i) => {
    m.set(s, i < nTrain ? 'train' : i < nTrain + nVal ? 'validate' : 'test');
  });
  return m;
}

/** Counts per split, view and label (raw uncertain/blank too), subjects, studies, and patients in several splits. */
export function tallyIndex(pending: PendingEntry[]) {
  const perSplit: Record<Split, number> = { train: 0, validate: 0, test: 0 };
  const perView: Record<string, number> = {};
  const perLabel: IndexSummary['perLabel'] = {};
  for (const f of FINDINGS)
    perLabel[f] = { positive: 0, negative: 0, ignored: 0, rawUncertain: 0, rawBlank: 0 };
  const subjects = new Set<string>();
  const studies = new Set<string>();
  const splitsOfSubject = new Map<string, Set<Split>>();
  const entries: IndexEntry[] = [];
  for (const { rawLabels, ...e } of pending) {
    perSplit[e.split]++;
    perView[e.view] = (perView[e.view] ?? 0) + 1;
    FINDINGS.forEach((f, k) => {
      const pl = perLabel[f];
      if (!e.labelMask[k]) pl.ignored++;
      else if (e.labels[k]) pl.positive++;
      else pl.negative++;
      if (rawLabels[k] === -1) pl.rawUncertain++;
      if (rawLabels[k] === null) pl.rawBlank++;
    });
    subjects.add(e.subjectId);
    studies.add(`${e.subjectId}/${e.studyId}`);
    const s = splitsOfSubject.get(e.subjectId) ?? new Set<Split>();
    s.add(e.split);
    splitsOfSubject.set(e.subjectId, s);
    entries.push(e);
  }
  let patientsInSeveralSplits = 0;
  for (const s of splitsOfSubject.values()) if (s.size > 1) patientsInSeveralSplits++;
  return { entries, perSplit, perView, perLabel, subjects, studies, patientsInSeveralSplits };
}

/**
 * One index being built: the kept entries, the rows of the table that lists the images, the views seen,
 * and the dropped rows and identical repeats by reason.
 */
export class IndexBuild {
  readonly dropped = new ReasonCounter();
  readonly duplicates = new ReasonCounter();
  readonly viewsSeen: Record<string, number> = {};
  readonly pending: PendingEntry[] = [];
  /** Rows of the tables that list the images (the summary's metadataRows). */
  rows = 0;

  constructor(readonly opts: BuildOptions) {}

  /** Streams a table that lists images through `makeRules` (see readTable); its rows are counted. */
  async readListing<T>(
    file: string,
    columns: readonly string[],
    makeRules: (csv: CsvReader) => TableRules<T>,
  ): Promise<void> {
    this.rows += await readTable(file, columns, this, makeRules);
  }

  /**
   * Counts a view value (blank shown as "(blank)") and says whether the options keep it; a dropped row
   * is an example under its reason, `where` naming it (file, row, id), as every other drop is.
   */
  keepsView(view: string, where: string): boolean {
    const key = view === '' ? '(blank)' : view;
    this.viewsSeen[key] = (this.viewsSeen[key] ?? 0) + 1;
    if (this.opts.views.includes(view)) return true;
    this.dropped.add(
      `view-not-selected:${key}`,
      `${where}: view "${view}" is not among the selected views (${this.opts.views.join(', ')})`,
    );
    return false;
  }

  /** Looks an image up at `path` under the root: it is there, or a refusal naming the row. */
  onDisk(where: string): ImageLookup {
    return (path) => {
      const full = join(this.opts.root, path);
      return existsSync(full) ? path : { drop: 'image-missing', message: `${where}: ${full} does not exist` };
    };
  }

  /**
   * The last steps of every row that is kept so far: the positive filter (requirePositive), the image on
   * disk (checkFiles; `lookup` may move the path), then the label policy. The entry keeps the draft's key
   * order, which index.jsonl shows. `where` names the row (file, row, id) in a drop's example.
   * @returns the pending entry, or null when the row was dropped (counted).
   */
  admit(draft: EntryDraft, raw: (number | null)[], lookup: ImageLookup, where: string): PendingEntry | null {
    if (this.opts.requirePositive && !raw.includes(1)) {
      this.dropped.add(
        'no-positive-label',
        `${where}: none of the five findings is a raw 1 (requirePositive)`,
      );
      return null;
    }
    let path = draft.path;
    if (this.opts.checkFiles) {
      const found = lookup(path);
      if (typeof found !== 'string') {
        this.dropped.add(found.drop, found.message);
        return null;
      }
      path = found;
    }
    const { labels, labelMask } = applyLabelPolicy(raw, this.opts);
    const e: PendingEntry = { ...draft, path, labels, labelMask, rawLabels: raw };
    this.pending.push(e);
    return e;
  }

  /** Moves a seeded `fraction` of the train patients to validate (whole patients, so no patient is in both). */
  carveValidate(fraction: number): void {
    if (!(fraction > 0)) return;
    const subjects = this.pending.filter((e) => e.split === 'train').map((e) => e.subjectId);
    const m = patientSplit(subjects, this.opts.splitSeed, [1 - fraction, fraction, 0]);
    for (const e of this.pending)
      if (e.split === 'train' && m.get(e.subjectId) === 'validate') e.split = 'validate';
  }

  /** The seeded patient-level split of every entry (options.split = 'patient'). */
  splitByPatient(): void {
    const m = patientSplit(
      this.pending.map((e) => e.subjectId),
      this.opts.splitSeed,
      this.opts.splitFractions,
    );
    for (const e of this.pending) e.split = m.get(e.subjectId) as Split;
  }

  /** The entries and the summary: `head` first (the dataset, absent for MIMIC; the options; the tables read), then the tally. */
  finish(head: {
    dataset?: DatasetName;
    options: IndexSummary['options'];
    files: Record<string, string | null>;
  }): { entries: IndexEntry[]; summary: IndexSummary } {
    const { entries, perSplit, perView, perLabel, subjects, studies, patientsInSeveralSplits } = tallyIndex(
      this.pending,
    );
    return {
      entries,
      summary: {
        ...(head.dataset ? { dataset: head.dataset } : {}),
        root: this.opts.root,
        options: head.options,
        files: head.files,
        metadataRows: this.rows,
        kept: entries.length,
        perSplit,
        perView,
        viewsSeen: this.viewsSeen,
        perLabel,
        subjects: subjects.size,
        studies: studies.size,
        dropped: this.dropped.toJSON(),
        duplicates: this.duplicates.toJSON(),
        patientsInSeveralSplits,
      },
    };
  }
}

/** The summary head of a dataset other than MIMIC: its options without root, validateFraction last, readerRule for vindr. */
export function datasetHead(
  dataset: DatasetName,
  opts: ResolvedIndexOptions,
  files: Record<string, string | null>,
): { dataset: DatasetName; options: IndexSummary['options']; files: Record<string, string | null> } {
  const { root: _r, dataset: _d, validateFraction, readerRule, ...rest } = opts;
  const options = {
    ...rest,
    validateFraction,
    ...(dataset === 'vindr' ? { readerRule } : {}),
  } as IndexSummary['options'];
  return { dataset, options, files };
}
