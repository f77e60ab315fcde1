/**
 * What a run's predicted-mask column stands on (config.segmenter): the segmenter's Dice and HD95 per
 * structure against CheXmask on the run's test split, measured on the very masks the column used
 * (predicted-masks/, no second forward pass), the fingerprint of its weights and what it was trained
 * on (the train.json `cxrmask segmenter train` wrote beside them).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sha256FileAsync } from '../common/hash.js';
import { readJson } from '../common/io.js';
import { FILL_SHIFT } from '../masks/overlay.js';
import { STRUCTURES, type Structure, type Summary, scoreMasks, summarize } from '../segment/metrics.js';
import type { CacheLike } from './backend.js';
import type { PredictedMasks } from './predicted-masks.js';

/**
 * The segmenter behind a run's predicted-mask column: its weights, training data and test Dice/HD95 per
 * structure.
 */
export interface SegmenterQuality {
  dir: string;
  weights: string;
  /** sha256 of the weights file (first 16 hex digits). */
  weightsSha256: string;
  /** Test rows with CheXmask anatomy that were scored. */
  images: number;
  gridSize: number;
  dice: Record<Structure, Summary>;
  /** In model-grid pixels. */
  hd95: Record<Structure, Summary>;
  /** From the training folder's train.json; null when the weights came from elsewhere. */
  training: {
    fingerprint: Record<string, unknown>;
    epochs: number;
    bestEpoch: number | null;
    bestValDice: number | null;
  } | null;
}

interface TrainJson {
  fingerprint?: Record<string, unknown>;
  epoch?: number;
  best?: { epoch: number; valDice: number } | null;
}

export async function segmenterQuality(
  seg: { dir: string; weights: string },
  cache: CacheLike,
  pm: PredictedMasks,
  testRows: number[],
): Promise<SegmenterQuality> {
  const regionMasks = (cache as { regionMasks?: (idx: number[]) => Uint8Array }).regionMasks;
  if (!regionMasks) throw new Error('segmenter quality needs a cache with region masks');
  const hw = pm.size * pm.size;
  const rows: number[] = [];
  const refs: Uint8Array[] = [];
  for (const r of testRows) {
    if (!pm.slot.has(r)) continue;
    const ref = regionMasks.call(cache, [r]);
    if (!ref.some((b) => b !== 0)) continue; // no CheXmask anatomy for this image: nothing to score
    rows.push(r);
    refs.push(ref);
  }
  const pred = new Uint8Array(rows.length * hw);
  const ref = new Uint8Array(rows.length * hw);
  rows.forEach((r, j) => {
    const plane = pm.planes.subarray(pm.slot.get(r)! * hw, (pm.slot.get(r)! + 1) * hw);
    for (let p = 0; p < hw; p++) pred[j * hw + p] = (plane[p]! >> FILL_SHIFT) & 7;
    ref.set(refs[j]!, j * hw);
  });
  const scores = scoreMasks(pred, ref, rows.length, pm.size);
  const dice = {} as Record<Structure, Summary>;
  const hd95 = {} as Record<Structure, Summary>;
  for (const st of STRUCTURES) {
    dice[st] = summarize(scores.dice[st]);
    hd95[st] = summarize(scores.hd95[st]);
  }
  const tj = join(dirname(seg.weights), 'train.json');
  const t = existsSync(tj) ? readJson<TrainJson>(tj) : null;
  return {
    dir: seg.dir,
    weights: seg.weights,
    weightsSha256: (await sha256FileAsync(seg.weights)).slice(0, 16),
    images: rows.length,
    gridSize: pm.size,
    dice,
    hd95,
    training: t
      ? {
          fingerprint: t.fingerprint ?? {},
          epochs: t.epoch ?? 0,
          bestEpoch: t.best?.epoch ?? null,
          bestValDice: t.best?.valDice ?? null,
        }
      : null,
  };
}
