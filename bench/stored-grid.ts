/**
 * A finished grid as evaluate() reads it, on labels the caller made: the split, zero-shot's two
 * protocols and the given trained cells, each with stored predictions on validation and test
 * (original and masked) drawn by `score` from an image's label. For benches and tests of the metrics.
 */
import type { CellResult, PredGrid, SplitData, ZeroShotResult } from '../ts/experiment/cells.js';
import type { Setup, Variant } from '../ts/experiment/config.js';

export interface StoredGrid {
  sd: SplitData;
  zs: ZeroShotResult;
  trained: CellResult[];
}

export function storedGrid(o: {
  nVal: number;
  nTest: number;
  /** [nVal + nTest, k] labels and label mask, validation rows first. */
  labels: Float32Array;
  labelMask: Float32Array;
  k: number;
  /** A probability for one label (0 or 1). */
  score: (label: number) => number;
  cells: { setup: Setup; trainVariant: Variant; seed: number }[];
}): StoredGrid {
  const { k } = o;
  const validate = Array.from({ length: o.nVal }, (_, i) => i);
  const test = Array.from({ length: o.nTest }, (_, i) => o.nVal + i);
  const sd: SplitData = { train: [], validate, test, labels: o.labels, labelMask: o.labelMask };
  const preds = (rows: number[]) => ({
    probs: rows.flatMap((i) => Array.from({ length: k }, (_, j) => o.score(o.labels[i * k + j]!))),
    failed: [],
  });
  const grid = (): PredGrid => ({
    validate: { original: preds(validate), masked: preds(validate) },
    test: { original: preds(test), masked: preds(test) },
  });
  const zs: ZeroShotResult = {
    id: 'zeroshot',
    prompts: [],
    negativePrompts: null,
    logitScale: 100,
    protocols: { 'per-finding': grid(), 'softmax-5way': grid() },
    seconds: 0,
    finishedAt: '',
  };
  const trained: CellResult[] = o.cells.map((c) => ({
    id: `${c.setup}-${c.trainVariant}-${c.seed}`,
    ...c,
    predictions: grid(),
    seconds: 0,
    device: 'cpu',
    finishedAt: '',
  }));
  return { sd, zs, trained };
}
