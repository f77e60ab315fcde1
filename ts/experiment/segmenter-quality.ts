/**
 * What a run's predicted-mask column stands on (config.segmenter): the segmenter's Dice and HD95 per
 * structure against CheXmask on the run's test split, measured on the very masks the column used
 * (predicted-masks/, no second forward pass), the fingerprint of its weights and what it was trained
 * on (the train.json `cxrmask segmenter train` wrote beside them).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sha256FileAsync } from '../common/hash.js';
import { finishStepsInTurns, type Steps, type StopSignal } from '../common/interrupt.js';
import { readJson } from '../common/io.js';
import { FILL_SHIFT } from '../masks/overlay.js';
import {
  emptyScores,
  type SegScores,
  STRUCTURES,
  type Structure,
  type Summary,
  scoreMasks,
  summarize,
} from '../segment/metrics.js';
import type { CacheLike } from './backend.js';
import type { PredictedMasks } from './predicted-masks.js';

/** One step per test row with a predicted mask and CheXmask anatomy: its Dice and HD95 added. */
function* scoreSteps(
  pm: PredictedMasks,
  testRows: number[],
  reference: (row: number) => Uint8Array,
): Steps<{ scores: SegScores; images: number }> {
  const hw = pm.size * pm.size;
  const pred = new Uint8Array(hw);
  const scores = emptyScores();
  let images = 0;
  for (const r of testRows) {
    const slot = pm.slot.get(r);
    if (slot === undefined) continue;
    const ref = reference(r);
    if (!ref.some((b) => b !== 0)) continue; // no CheXmask anatomy for this image: nothing to score
    const plane = pm.planes.subarray(slot * hw, (slot + 1) * hw);
    for (let p = 0; p < hw; p++) pred[p] = (plane[p]! >> FILL_SHIFT) & 7;
    scoreMasks(pred, ref, 1, pm.size, scores);
    images++;
    yield;
  }
  return { scores, images };
}

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

/**
 * Scores the run's predicted masks of `testRows` against CheXmask's, image by image: bounded memory
 * (two planes, not two copies of the test split: 2.5 GB at NIH14's 25,596 test images) and, at
 * ~7 ms an image (bench/seg-metrics.ts), a turn for the event loop every 50 ms, so a Ctrl-C is answered.
 * @throws {InterruptedError} (rejects) `signal` was stopped.
 */
export async function segmenterQuality(
  seg: { dir: string; weights: string },
  cache: CacheLike,
  pm: PredictedMasks,
  testRows: number[],
  signal?: StopSignal,
): Promise<SegmenterQuality> {
  const regionMasks = (cache as { regionMasks?: (idx: number[]) => Uint8Array }).regionMasks;
  if (!regionMasks) throw new Error('segmenter quality needs a cache with region masks');
  const { scores, images } = await finishStepsInTurns(
    scoreSteps(pm, testRows, (r) => regionMasks.call(cache, [r])),
    signal,
    'interrupted while scoring the segmenter on the test split',
  );
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
    images,
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
