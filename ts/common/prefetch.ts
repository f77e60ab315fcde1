/**
 * Overlap loading with compute: while the consumer works on batch k, batches k+1..k+depth are
 * already being read (reads run on libuv's pool, model ops on their own worker threads). What the
 * consumer waits for is timed, so loops can report the share of wall time spent waiting for data.
 */
export type Loaded<T> = { i: number; ok: true; value: T } | { i: number; ok: false; error: unknown };

export class DataWait {
  /** Seconds the consumer spent waiting for a batch that was not ready. */
  seconds = 0;
}

export async function* prefetch<T>(
  count: number,
  load: (i: number) => Promise<T>,
  { depth = 2, wait }: { depth?: number; wait?: DataWait } = {},
): AsyncGenerator<Loaded<T>> {
  const inFlight: Promise<Loaded<T>>[] = [];
  let next = 0;
  const start = () => {
    const i = next++;
    // Errors are values here: a bad batch is the consumer's decision, and nothing is left unhandled.
    inFlight.push(
      Promise.resolve()
        .then(() => load(i))
        .then(
          (value): Loaded<T> => ({ i, ok: true, value }),
          (error: unknown): Loaded<T> => ({ i, ok: false, error }),
        ),
    );
  };
  // `depth` reads stay in flight ahead of the batch the consumer is working on.
  while (next < count && inFlight.length < Math.max(1, depth)) start();
  while (inFlight.length) {
    const t0 = performance.now();
    const r = await inFlight.shift()!;
    if (wait) wait.seconds += (performance.now() - t0) / 1000;
    if (next < count) start();
    yield r;
  }
}
