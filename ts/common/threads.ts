/**
 * The bound on intra-op CPU threads, shared by setThreads, the experiment config and the CLI. LibTorch
 * starts every thread it is asked for; far above the core count they only contend (and a typo such
 * as 100000 exhausts the process's thread limit), so a count above 4× the cores is refused.
 */
import { availableParallelism } from 'node:os';

/** Largest accepted intra-op thread count: 4× the cores, at least 16. */
export const MAX_THREADS = Math.max(16, 4 * availableParallelism());

/** Why `n` is not an acceptable thread count (null when it is). */
export function threadsProblem(n: unknown): string | null {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
    return `expected a positive integer, got ${String(n)}`;
  if (n > MAX_THREADS)
    return `${n} is above the limit of ${MAX_THREADS} (4× the ${availableParallelism()} cores, at least 16)`;
  return null;
}
