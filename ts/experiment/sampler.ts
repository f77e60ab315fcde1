/**
 * Each epoch's seeded order (train.ts shuffled/epochSeed) cut into global batches of
 * perRank × worldSize rows; rank r takes the r-th contiguous slice of each. The union over ranks of
 * every step is exactly the single-process batch of that size, so one epoch sees every row once, in
 * the same global batches as one process at batch perRank × worldSize. The last global batch may be
 * short: its rows are split as evenly as possible, and a rank left with none still joins the step
 * (Classifier.idleStep).
 */

export function stepsPerEpoch(rows: number, perRank: number, worldSize: number): number {
  return Math.ceil(rows / (perRank * worldSize));
}

/** The global batch of `step` (what one process at batch perRank × worldSize would train on). */
export function globalBatch<T>(order: readonly T[], step: number, perRank: number, worldSize: number): T[] {
  const g = perRank * worldSize;
  return order.slice(step * g, (step + 1) * g);
}

/** This rank's rows of `step`: slice `rank` of the global batch cut into worldSize near-equal parts. */
export function rankBatch<T>(
  order: readonly T[],
  step: number,
  perRank: number,
  rank: number,
  worldSize: number,
): T[] {
  const g = globalBatch(order, step, perRank, worldSize);
  return shardOf(g, rank, worldSize);
}

/** Contiguous part `rank` of `worldSize` near-equal parts (sizes differ by at most one). */
export function shardOf<T>(xs: readonly T[], rank: number, worldSize: number): T[] {
  const m = xs.length;
  return xs.slice(Math.floor((rank * m) / worldSize), Math.floor(((rank + 1) * m) / worldSize));
}
