/**
 * What ClipModel, Classifier and Segmenter share: one native op at a time (later calls wait their turn), and a
 * dispose that refuses new calls at once but lets queued ones finish before the native model is freed.
 */
import { SerialQueue } from './serial.js';

export abstract class NativeLifecycle<N extends { dispose(): void }> {
  protected readonly queue = new SerialQueue();
  #native: N | null;
  #freed: Promise<void> | null = null;

  protected constructor(
    native: N,
    protected readonly what: string,
  ) {
    this.#native = native;
  }

  /** True once `dispose()` was called (new calls throw). */
  get disposed(): boolean {
    return this.#native === null;
  }

  /**
   * New calls throw from now on; calls already queued still run. Resolves once they have settled and
   * the native model is freed (the same promise on every call, so awaiting it twice is fine).
   */
  dispose(): Promise<void> {
    if (!this.#freed) {
      const native = this.#native;
      this.#native = null;
      // queue.idle() never rejects: a failed call is its caller's error, not dispose's.
      this.#freed = this.queue.idle().then(() => native?.dispose());
    }
    return this.#freed;
  }

  /** `using m = …`: starts disposing; the native model is freed once queued calls are done. */
  [Symbol.dispose](): void {
    void this.dispose();
  }

  /** `await using m = …`: waits for the native model to be freed. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  protected live(): N {
    if (!this.#native) throw new Error(`${this.what} is disposed`);
    return this.#native;
  }
}
