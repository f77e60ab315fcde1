/** The one interface every dataset module implements: its tables and files in, the common index out. */
import type { IndexEntry, IndexSummary } from '../mimic.js';
import type { ResolvedIndexOptions } from './common.js';
import type { DatasetName } from './names.js';

export interface DatasetAdapter {
  name: DatasetName;
  /** One line for help texts and docs. */
  title: string;
  /** The column of CheXmask's CSV for this dataset that holds the image id. */
  chexmaskIdColumn: string;
  /** CheXmask's file name for this dataset. */
  chexmaskFile: string;
  /**
   * Streams the dataset's tables under opts.root into index entries (image path, patient, study, view,
   * split, five labels + mask, CheXmask id). Bad rows are dropped and counted by reason, identical
   * repeated rows counted as duplicates; missing images (a partial download) are counted, never fatal.
   * @throws {DataError} a missing table, a missing column, or a repeated row that disagrees.
   */
  buildIndex(opts: ResolvedIndexOptions): Promise<{ entries: IndexEntry[]; summary: IndexSummary }>;
}
