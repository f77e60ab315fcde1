/**
 * Unreadable training images: a batch that fails to load is retried image by image so one bad image
 * does not cost its whole batch; the images that still fail are counted per epoch (EpochRecord) and
 * training stops with a DataError once more than `maxShare` of the training split is unreadable (a
 * damaged cache or image tree should not quietly become a smaller training set).
 */
import { DataError } from '../data/errors.js';
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

/**
 * The readable part of a batch whose load failed: each image is tried alone, the failures counted in
 * `tally`; null when none of them loads.
 */
export async function readablePart(
  source: (idx: number[]) => Promise<Batch>,
  idx: number[],
  tally: UnreadableTally,
): Promise<Batch | null> {
  const ok: number[] = [];
  for (const i of idx) {
    try {
      await source([i]);
      ok.push(i);
    } catch (e) {
      tally.images++;
      tally.first ??= `row ${i}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  tally.batches++;
  tally.check();
  if (!ok.length) return null;
  try {
    return await source(ok);
  } catch (e) {
    // images that load alone but not together: count the batch as unreadable rather than guess
    tally.images += ok.length;
    tally.first ??= `rows ${ok.join(',')}: ${e instanceof Error ? e.message : String(e)}`;
    tally.check();
    return null;
  }
}
