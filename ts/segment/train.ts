/**
 * Training the segmenter on an image cache: the train split's records carry image and targets (mask
 * plane bits 3-5), so an epoch reads records and decodes nothing. Each epoch ends with validation
 * (Dice per structure on the validate split); the best epoch's weights (best.pt) and the full state
 * after every epoch (state-<epoch>.pt: weights, AdamW moments, step; train.json names it and keeps the
 * history) are written atomically, so an interrupted run resumes exactly where the last epoch ended.
 */

import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataError, InterruptedError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { readJson, removeStaleTemps, saveCheckpoint, writeJsonAtomic } from '../common/io.js';
import { DataWait, prefetch } from '../common/prefetch.js';
import { epochSeed, shuffled } from '../common/random.js';

import type { Cache } from '../images/cache.js';
import type { ImageInput } from '../model/records.js';
import type { Segmenter } from '../model/segmenter.js';
import { meanDice, type SegScores, STRUCTURES, scoreMasks } from './metrics.js';

export interface SegTrainOptions {
  cache: Cache;
  segmenter: Segmenter;
  /** Output folder: best.pt, state.pt, train.json. */
  out: string;
  /** The exported segmenter's folder, recorded in train.json so the output folder alone can be served. */
  modelDir?: string;
  epochs: number;
  batchSize: number;
  seed: number;
  /** Cap on validation images (default all). */
  maxValidate?: number;
  /** Train on at most this many images (a fixed seeded subset; default all). */
  maxTrain?: number;
  /** What the checkpoint belongs to; a train.json with another fingerprint is not resumed. */
  fingerprint: Record<string, unknown>;
  signal?: StopSignal;
  onEpoch?: (e: SegEpoch) => void;
  onBatch?: (done: number, total: number, loss: number) => void;
}

export interface SegEpoch {
  epoch: number;
  step: number;
  loss: number;
  trainDice: number;
  val: ReturnType<typeof meanDice>;
  seconds: number;
  dataWaitSeconds: number;
}

export interface SegTrainState {
  fingerprint: Record<string, unknown>;
  /** The exported segmenter (seg.pt, model.json) these weights belong to: what serve/predict load. */
  modelDir?: string;
  /** Epochs finished (the next one to run is this + 1). */
  epoch: number;
  /** Full-state checkpoint of that epoch, in the output folder. */
  checkpoint: string | null;
  step: number;
  history: SegEpoch[];
  best: { epoch: number; valDice: number } | null;
  done: boolean;
}

/** Cache rows of a split that have anatomy (a non-empty filled region): the segmenter's data. */
export function maskedIndices(cache: Cache, split: 'train' | 'validate' | 'test'): number[] {
  const all = cache.indicesOf(split);
  if (cache.build.requireMask) return all;
  return all.filter((i) => cache.regionMasks([i]).some((b) => b !== 0));
}

/** What scoreSplit predicts with: a Segmenter, or training's validation (checkedMasks); `rows` are cache rows. */
interface MaskPredictor {
  predictMasks(x: ImageInput, n: number, rows: number[]): Promise<Uint8Array>;
}

/** Predicted region masks of cache rows, batch by batch, scored against the cache's own regions. */
export async function scoreSplit(
  seg: MaskPredictor,
  cache: Cache,
  indices: number[],
  batchSize: number,
  onMasks?: (indices: number[], masks: Uint8Array) => void,
): Promise<SegScores> {
  let scores: SegScores | undefined;
  const batches = Math.ceil(indices.length / batchSize);
  for await (const r of prefetch(batches, async (b) => {
    const idx = indices.slice(b * batchSize, (b + 1) * batchSize);
    return { idx, batch: await cache.recordBatch(idx, ['original']) };
  })) {
    if (!r.ok) throw r.error;
    const { idx, batch } = r.value;
    const masks = await seg.predictMasks(batch.x, idx.length, idx);
    onMasks?.(idx, masks);
    scores = scoreMasks(masks, cache.regionMasks(idx), idx.length, cache.size, scores);
  }
  return scores ?? scoreMasks(new Uint8Array(0), new Uint8Array(0), 0, cache.size);
}

/**
 * Segmenter.predictMasks through the logits, for validation while training: the same masks (a
 * structure where its logit is above logit(threshold), compared in float32 as the addon does), but a
 * NaN or infinite logit stops the training. Thresholded, NaN weights read as "no structure", so an
 * epoch whose last step made the weights non-finite (after that step's loss was read) was scored and
 * saved.
 */
function checkedMasks(seg: Segmenter, o: SegTrainOptions, epoch: number): MaskPredictor {
  const cut = Math.fround(Math.log(seg.threshold / (1 - seg.threshold)));
  const plane = seg.size * seg.size;
  return {
    async predictMasks(x, n, rows) {
      const logits = await seg.logits(x, n);
      const masks = new Uint8Array(n * plane);
      for (let i = 0; i < n; i++)
        for (let c = 0; c < STRUCTURES.length; c++) {
          const at = (i * STRUCTURES.length + c) * plane;
          for (let p = 0; p < plane; p++) {
            const v = logits[at + p]!;
            // finiteness first: +Infinity is also > cut
            if (!Number.isFinite(v))
              throw new DataError(
                'non-finite-loss',
                `segmenter training ${o.out}, epoch ${epoch}, validation: the ${STRUCTURES[c]} logit of cache row ${rows[i]} is ${v}: the weights are not finite. Training diverged: lower the learning rate (--lr), or turn bf16 off; nothing of this epoch was saved`,
              );
            if (v > cut) masks[i * plane + p]! |= 1 << c;
          }
        }
      return masks;
    },
  };
}

const sameFingerprint = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** @throws {RangeError} epochs or batchSize is not a positive integer, seed not a non-negative one. */
function checkTrainNumbers(o: SegTrainOptions): void {
  for (const [name, v, min] of [
    ['epochs', o.epochs, 1],
    ['batchSize', o.batchSize, 1],
    ['seed', o.seed, 0],
  ] as const)
    if (!Number.isInteger(v) || v < min)
      throw new RangeError(`${name} must be an integer ≥ ${min}, got ${v}`);
}

/**
 * train.json of an earlier run on the same data, with its checkpoint loaded into the segmenter; else
 * a fresh state. Temp files a killed run left are removed first.
 */
async function resumeSegState(o: SegTrainOptions, statePath: string): Promise<SegTrainState> {
  const modelDir = o.modelDir ? { modelDir: resolve(o.modelDir) } : {};
  removeStaleTemps(o.out);
  const prev = readJson<SegTrainState>(statePath);
  if (
    prev?.checkpoint &&
    sameFingerprint(prev.fingerprint, o.fingerprint) &&
    existsSync(join(o.out, prev.checkpoint))
  ) {
    await o.segmenter.load(join(o.out, prev.checkpoint));
    return { ...prev, ...modelDir, done: prev.epoch >= o.epochs };
  }
  return {
    fingerprint: o.fingerprint,
    ...modelDir,
    epoch: 0,
    checkpoint: null,
    step: 0,
    history: [],
    best: null,
    done: false,
  };
}

/** The rows trained and validated on: cache rows with CheXmask anatomy, capped by maxTrain/maxValidate. */
function segSplits(o: SegTrainOptions): { train: number[]; val: number[] } {
  let train = maskedIndices(o.cache, 'train');
  if (o.maxTrain !== undefined && train.length > o.maxTrain)
    train = shuffled(train, 99_991 + o.seed).slice(0, o.maxTrain);
  if (train.length === 0) throw new Error('the cache has no train rows with CheXmask anatomy');
  let val = maskedIndices(o.cache, 'validate');
  if (o.maxValidate !== undefined) val = val.slice(0, o.maxValidate);
  return { train, val };
}

/**
 * One epoch's steps over `order`: the row-weighted mean loss and training Dice. A step's loss is read
 * with its result (the segmenter's steps return it); a NaN or infinite one stops the training with a
 * DataError `non-finite-loss` before the epoch is saved.
 */
async function trainSegEpoch(
  o: SegTrainOptions,
  epoch: number,
  order: number[],
  wait: DataWait,
): Promise<{ loss: number; trainDice: number }> {
  const batches = Math.ceil(order.length / o.batchSize);
  let lossSum = 0;
  let diceSum = 0;
  let done = 0;
  for await (const r of prefetch(
    batches,
    (b) => o.cache.recordBatch(order.slice(b * o.batchSize, (b + 1) * o.batchSize), ['original']),
    { wait },
  )) {
    if (!r.ok) throw r.error;
    if (o.signal?.stop) throw new InterruptedError(`stopped in segmenter epoch ${epoch}`);
    const step = await o.segmenter.trainStep(r.value.x, r.value.n);
    if (!Number.isFinite(step.loss))
      throw new DataError(
        'non-finite-loss',
        `segmenter training ${o.out}, epoch ${epoch}, step ${Math.ceil((done + 1) / o.batchSize)}: the training loss is ${step.loss}. Training diverged: lower the learning rate (--lr), or turn bf16 off; nothing of this epoch was saved`,
      );
    lossSum += step.loss * r.value.n;
    diceSum += step.dice * r.value.n;
    done += r.value.n;
    o.onBatch?.(done, order.length, step.loss);
  }
  return { loss: lossSum / done, trainDice: diceSum / done };
}

/**
 * @throws {RangeError} epochs or batchSize is not a positive integer, seed not a non-negative one
 *   (zero epochs would leave no best.pt to load).
 */
export async function trainSegmenter(o: SegTrainOptions): Promise<SegTrainState> {
  checkTrainNumbers(o);
  const { cache, segmenter: seg } = o;
  const statePath = join(o.out, 'train.json');
  const best = join(o.out, 'best.pt');
  let state = await resumeSegState(o, statePath);
  const { train, val } = segSplits(o);
  for (let epoch = state.epoch + 1; epoch <= o.epochs; epoch++) {
    const t0 = performance.now();
    const order = shuffled(train, epochSeed(o.seed, epoch));
    const wait = new DataWait();
    const trained = await trainSegEpoch(o, epoch, order, wait);
    const valDice = meanDice(
      await scoreSplit(
        checkedMasks(seg, o, epoch),
        cache,
        val.length ? val : train.slice(0, 64),
        o.batchSize,
      ),
    );
    const rec: SegEpoch = {
      epoch,
      step: seg.step,
      ...trained,
      val: valDice,
      seconds: (performance.now() - t0) / 1000,
      dataWaitSeconds: wait.seconds,
    };
    if (!state.best || valDice.mean > state.best.valDice) {
      await saveCheckpoint(seg, best, { weightsOnly: true });
      state.best = { epoch, valDice: valDice.mean };
    }
    // The new checkpoint, then train.json naming it, then the old one goes: a crash anywhere in between
    // leaves a train.json whose checkpoint exists and matches it.
    const checkpoint = `state-${epoch}.pt`;
    await saveCheckpoint(seg, join(o.out, checkpoint));
    const old = state.checkpoint;
    state = {
      ...state,
      epoch,
      checkpoint,
      step: seg.step,
      history: [...state.history, rec],
      done: epoch >= o.epochs,
    };
    writeJsonAtomic(statePath, state);
    if (old && old !== checkpoint) rmSync(join(o.out, old), { force: true });
    o.onEpoch?.(rec);
  }
  return state;
}
