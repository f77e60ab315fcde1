/**
 * Calls on one model gathered into batches. The model runs one batch at a time; the calls that arrive
 * while it runs wait, and the next batch takes up to `maxBatch` of them at once. An idle model takes a
 * call at once (no timer: a lone request pays no wait), so batches form only under load, where one
 * forward over many images costs far less than many forwards over one (a GPU at batch 1 is mostly
 * idle). A batch that fails is run again one call at a time, so a bad input fails only its own call.
 */

interface Waiting<I, O> {
  item: I;
  resolve: (out: O) => void;
  reject: (e: unknown) => void;
}

/** Counts since the queue was made (for /metrics). */
export interface BatchCounts {
  /** Batches run, reruns of a failed batch's calls left out: calls ÷ batches is the mean batch. */
  batches: number;
  /** Calls taken onto the model (answered, failed, or running now). */
  calls: number;
  /** The most calls one batch took. */
  largest: number;
  /** Calls run again alone after their batch failed. */
  rerun: number;
}

export class BatchQueue<I, O> {
  private readonly waiting: Waiting<I, O>[] = [];
  /** A batch is on the model (one at a time). */
  private busy = false;
  /** Calls of that batch not yet settled (for `pending`). */
  private running = 0;
  private readonly counts: BatchCounts = { batches: 0, calls: 0, largest: 0, rerun: 0 };

  /**
   * @param runBatch answers `items` in order (one output per item), or throws for the whole batch.
   * @param maxBatch the most calls one batch takes (≥ 1).
   */
  constructor(
    private readonly runBatch: (items: I[]) => Promise<O[]>,
    readonly maxBatch: number,
  ) {
    if (!Number.isSafeInteger(maxBatch) || maxBatch < 1)
      throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  }

  /** Calls waiting or on the model. */
  get pending(): number {
    return this.waiting.length + this.running;
  }

  get stats(): BatchCounts {
    return { ...this.counts };
  }

  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.busy || this.waiting.length === 0) return;
    this.busy = true;
    const batch = this.waiting.splice(0, this.maxBatch);
    this.running = batch.length;
    this.settle(batch).finally(() => {
      this.busy = false;
      this.running = 0;
      this.next();
    });
  }

  private async settle(batch: Waiting<I, O>[]): Promise<void> {
    this.counts.calls += batch.length;
    this.counts.batches++;
    this.counts.largest = Math.max(this.counts.largest, batch.length);
    try {
      const out = await this.answer(batch.map((w) => w.item));
      for (const [i, w] of batch.entries()) w.resolve(out[i]!);
    } catch (e) {
      if (batch.length === 1) {
        batch[0]!.reject(e);
        return;
      }
      // which call broke the batch is unknown: each gets its own answer or its own error
      this.counts.rerun += batch.length;
      for (const w of batch) {
        try {
          w.resolve((await this.answer([w.item]))[0]!);
        } catch (e1) {
          w.reject(e1);
        }
        this.running--;
      }
    }
  }

  private async answer(items: I[]): Promise<O[]> {
    const out = await this.runBatch(items);
    if (out.length !== items.length)
      throw new Error(`a batch of ${items.length} calls gave ${out.length} answers`);
    return out;
  }
}
