/**
 * The calls an object spanning several native models has accepted (an opened model: the tower, then
 * the head or the prompts; MaskingPredictor: decode, segmenter, classifier). Each model's own queue
 * cannot see a whole call, so dispose() refuses new calls at once, then waits for these to settle
 * before it frees anything (docs/contracts.md, Lifetimes).
 */
export class CallTracker {
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  constructor(private readonly what: string) {}

  get disposed(): boolean {
    return this.closed;
  }

  /** Calls accepted and not yet settled. */
  get size(): number {
    return this.pending.size;
  }

  /** Runs `call` now (its inputs are taken at the call), or rejects once disposed. */
  run<T>(call: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`${this.what} is disposed`));
    const p = call();
    this.pending.add(p);
    const done = () => this.pending.delete(p);
    p.then(done, done);
    return p;
  }

  /** Refuses new calls; resolves once the accepted ones have settled (their errors are their callers'). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
  }
}
