/**
 * Unreadable training images: a batch that fails to load is retried image by image so one bad image
 * does not cost its whole batch; the images that still fail are counted per epoch (EpochRecord) and
 * training stops with a DataError once more than `maxShare` of the training split is unreadable (a
 * damaged cache or image tree should not quietly become a smaller training set).
 */
import { DataError } from '../common/errors.js';
import type { Batch } from './backend.js';

/** Default share of the training split that may be unreadable before training stops. */
export const MAX_UNREADABLE_SHARE = 0.01;

export class UnreadableTally {
  images = 0;
  /** Batches that had at least one unreadable image. */
  batches = 0;
  first: string | null = null;

  constructor(
    readonly total: number,
    readonly maxShare: number,
    readonly epoch: number,
  ) {}

  toJSON(): { images: number; batches: number } {
    return { images: this.images, batches: this.batches };
  }

  /** Throws once the unreadable images exceed the allowed share of the split. */
  check(): void {
    const allowed = Math.floor(this.maxShare * this.total);
    if (this.images <= allowed) return;
    throw new DataError(
      'unreadable-training-images',
      `epoch ${this.epoch}: ${this.images} of ${this.total} training images could not be read, more than the allowed ${(this.maxShare * 100).toFixed(2)}% (${allowed}; set maxUnreadableShare to change it). First: ${this.first}`,
    );
  }
}

/** What readableRows found: the batch of the rows that load (null when none do) and why the others did not. */
export interface ReadableRows {
  rows: number[];
  batch: Batch | null;
  failed: { rows: number[]; reason: string }[];
}

/** A batch whose load failed, image by image: the rows that load alone, then those rows together. */
export async function readableRows(
  source: (idx: number[]) => Promise<Batch>,
  idx: number[],
): Promise<ReadableRows> {
  const ok: number[] = [];
  const failed: ReadableRows['failed'] = [];
  const why = (e: unknown) => (e instanceof Error ? e.message : String(e));
  for (const i of idx) {
    try {
      await source([i]);
      ok.push(i);
    } catch (e) {
      failed.push({ rows: [i], reason: why(e) });
    }
  }
  if (!ok.length) return { rows: [], batch: null, failed };
  try {
    return { rows: ok, batch: await source(ok), failed };
  } catch (e) {
    // images that load alone but not together: the batch counts as unreadable rather than guess
    return { rows: [], batch: null, failed: [...failed, { rows: ok, reason: why(e) }] };
  }
}

/**
 * The readable part of a batch whose load failed (readableRows), the failures counted in `tally`
 * (which stops the run past its share); null when none of them loads.
 */
export async function readablePart(
  source: (idx: number[]) => Promise<Batch>,
  idx: number[],
  tally: UnreadableTally,
): Promise<Batch | null> {
  const r = await readableRows(source, idx);
  for (const f of r.failed) {
    tally.images += f.rows.length;
    tally.first ??= `${f.rows.length === 1 ? 'row' : 'rows'} ${f.rows.join(',')}: ${f.reason}`;
  }
  tally.batches++;
  tally.check();
  return r.batch;
}
