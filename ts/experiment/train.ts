/**
 * The training loop shared by linear probing (inputs = cached features, head-only classifier) and
 * joint fine-tuning (inputs = images, encoder + head). One epoch = one seeded shuffle of the training
 * rows; the order of epoch e depends only on (seed, e), so a resumed run replays exactly the same
 * batches. After every epoch: the model (weights + optimizer state, via Classifier.save) goes to
 * `epoch-<e>.ckpt`, the best-so-far on validation to `best.ckpt` (weights only: prediction needs no
 * AdamW moments, a third of the bytes for BiomedCLIP), and only then `state.json` is replaced (atomic
 * rename) — a crash at any point leaves a consistent state that loses at most the epoch in progress.
 * `keepCheckpoints` full-state epoch files are kept (default 1, the one resume needs). Batches are
 * prefetched (ts/common/prefetch.ts) and the time spent waiting for them is recorded per epoch.
 */

import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, InterruptedError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { readJson, removeStaleTemps, saveCheckpoint, writeJsonAtomic } from '../common/io.js';
import { FINDINGS, NUM_LABELS } from '../common/labels.js';
import { DataWait, prefetch } from '../common/prefetch.js';
import { epochSeed, shuffled } from '../common/random.js';
import type { ClassifierLike, StepLoss } from '../model/backend.js';
import type { DataParallel } from '../model/process-group.js';
import type { ImageInput } from '../model/records.js';
import type { Batch } from './backend.js';
import { chooseThresholds, computeMetrics, type LabelArrays } from './metrics.js';
import { globalBatch, rankBatch, shardOf, stepsPerEpoch } from './sampler.js';
import { MAX_UNREADABLE_SHARE, readablePart, UnreadableTally } from './unreadable.js';

/** How often (in steps) a training loop reads the loss from the device. */
export const LOSS_READ_EVERY = 20;

export type BatchSource = (indices: number[]) => Promise<Batch>;

/** One training epoch: its loss, validation metrics and times. */
export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  val: { macroAUROC: number; meanLabelAccuracy: number; loss: number };
  seconds: number;
  /** Training steps only (validation and checkpoint excluded). */
  trainSeconds?: number;
  /** Time the loop waited for a batch that was not yet loaded (training + validation). */
  dataWaitSeconds?: number;
  /** Time and bytes of this epoch's checkpoint writes (best weights + full epoch state). */
  checkpoint?: { seconds: number; bytes: number };
  /** Training images that could not be read this epoch (skipped), and the batches they were in. */
  unreadable?: { images: number; batches: number };
}

export interface TrainState {
  epochsDone: number;
  history: EpochRecord[];
  bestEpoch: number;
  bestScore: number | null;
  lastCheckpoint: string | null;
  done: boolean;
}

/** Where a training cell is: epoch and step out of their totals. */
export interface TrainProgress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  /** The newest loss read from the device (they are read every LOSS_READ_EVERY steps); absent before the first. */
  loss?: number;
}

export interface TrainOptions {
  dir: string;
  /** What errors call this training (the grid: `cell <id>`); default the folder `dir`. */
  name?: string;
  epochs: number;
  batchSize: number;
  seed: number;
  trainIdx: number[];
  valIdx: number[];
  source: BatchSource;
  selection: 'macroAUROC' | 'meanLabelAccuracy' | 'loss';
  patience?: number;
  thresholdRule?: Parameters<typeof chooseThresholds>[1];
  signal?: StopSignal;
  onProgress?: (p: TrainProgress) => void;
  onEpoch?: (r: EpochRecord) => void;
  /** Full-state epoch checkpoints kept on disk (newest first; resume needs only the last). Default 1. */
  keepCheckpoints?: number;
  /** Share of the training split that may be unreadable in an epoch before training stops (default 0.01). */
  maxUnreadableShare?: number;
  /**
   * Data-parallel training (ts/distributed): `clf` has this group attached, batchSize is per rank
   * (global batch = batchSize × worldSize, sharded by experiment/sampler.ts), validation is
   * sharded and gathered, rank 0 alone writes checkpoints and state.json (the others wait at a
   * barrier and read them from the shared `dir`).
   */
  dist?: DataParallel;
}

export interface Predictions {
  probs: Float32Array;
  labels: Float32Array;
  labelMask: Float32Array;
  /** Rows whose batch could not be loaded: probabilities NaN, labelMask 0 (ignored by metrics). */
  failed: number[];
}

/** How predictAll / predictAllSharded go through the rows. */
export interface PredictOptions {
  batchSize: number;
  /** Stops between batches (InterruptedError). */
  signal?: StopSignal;
  /** Where the time spent waiting for batches is added up (validation during training); none by default. */
  wait?: DataWait;
}

/**
 * Predict `indices` in batches. A batch that fails to load is retried image by image; an image that
 * still fails is skipped (its row is NaN, its labels ignored) and counted in `failed`.
 */
export async function predictAll(
  predict: (x: ImageInput, n: number) => Promise<Float32Array>,
  source: BatchSource,
  indices: number[],
  { batchSize, signal, wait }: PredictOptions,
): Promise<Predictions> {
  const k = NUM_LABELS;
  const n = indices.length;
  const probs = new Float32Array(n * k).fill(Number.NaN);
  const labels = new Float32Array(n * k);
  const labelMask = new Float32Array(n * k);
  const failed: number[] = [];
  const put = (start: number, b: Batch, p: Float32Array) => {
    probs.set(p.subarray(0, b.n * k), start * k);
    labels.set(b.labels.subarray(0, b.n * k), start * k);
    labelMask.set(b.labelMask.subarray(0, b.n * k), start * k);
  };
  const batches = prefetch(
    Math.ceil(n / batchSize),
    (j) => source(indices.slice(j * batchSize, (j + 1) * batchSize)),
    {
      wait,
    },
  );
  for await (const item of batches) {
    if (signal?.stop) throw new InterruptedError('interrupted');
    const s = item.i * batchSize;
    const idx = indices.slice(s, s + batchSize);
    let p: Float32Array | null = null;
    try {
      if (!item.ok) throw item.error;
      p = await predict(item.value.x, item.value.n);
    } catch {
      // Retry image by image; an image that still fails is skipped and counted.
      for (let j = 0; j < idx.length; j++) {
        let one: { b: Batch; p: Float32Array } | null = null;
        try {
          const b = await source([idx[j]!]);
          one = { b, p: await predict(b.x, b.n) };
        } catch {
          failed.push(indices[s + j]!);
        }
        // checked outside the catch: NaN weights are no unreadable image, and would fail every row
        if (one) put(s + j, one.b, checkFiniteOutput(one.p, [idx[j]!]));
      }
    }
    if (p && item.ok) put(s, item.value, checkFiniteOutput(p, idx));
  }
  return { probs, labels, labelMask, failed };
}

/**
 * `p` ([rows, NUM_LABELS] probabilities of `rows`) or a DataError `non-finite-output`: a NaN comes from
 * non-finite weights (a diverged training, a NaN checkpoint), and metrics on it would mean nothing.
 */
function checkFiniteOutput(p: Float32Array, rows: number[]): Float32Array {
  const k = NUM_LABELS;
  for (let i = 0; i < rows.length * k; i++)
    if (!Number.isFinite(p[i]!))
      throw new DataError(
        'non-finite-output',
        `the model's output for row ${rows[Math.floor(i / k)]} (${FINDINGS[i % k]}) is ${p[i]}: its weights are not finite (a training that diverged, or a checkpoint saved from one)`,
      );
  return p;
}

/**
 * predictAll over a group: each rank predicts its contiguous share of `indices`, then one all-reduce
 * (every rank's rows are zero on the others) gives every rank the whole, identical Predictions.
 */
export async function predictAllSharded(
  predict: (x: ImageInput, n: number) => Promise<Float32Array>,
  source: BatchSource,
  indices: number[],
  o: PredictOptions & { dist?: DataParallel },
): Promise<Predictions> {
  const { dist, ...options } = o;
  if (!dist || dist.worldSize === 1) return predictAll(predict, source, indices, options);
  const k = NUM_LABELS;
  const n = indices.length;
  const mine = shardOf(indices, dist.rank, dist.worldSize);
  const off = Math.floor((dist.rank * n) / dist.worldSize);
  const p = await predictAll(predict, source, mine, options);
  // [probs | labels | labelMask | failed flag per row]; a failed row's NaN probabilities stay NaN.
  const buf = new Float32Array(3 * n * k + n);
  buf.set(p.probs, off * k);
  buf.set(p.labels, n * k + off * k);
  buf.set(p.labelMask, 2 * n * k + off * k);
  const failedSet = new Set(p.failed);
  for (let j = 0; j < mine.length; j++) if (failedSet.has(mine[j]!)) buf[3 * n * k + off + j] = 1;
  const all = await dist.allReduce(buf);
  const failed: number[] = [];
  for (let i = 0; i < n; i++) if (all[3 * n * k + i]! > 0.5) failed.push(indices[i]!);
  return {
    probs: all.slice(0, n * k),
    labels: all.slice(n * k, 2 * n * k),
    labelMask: all.slice(2 * n * k, 3 * n * k),
    failed,
  };
}

/** Masked mean BCE of probabilities (clamped) — the validation loss. */
export function bceLoss(p: Predictions): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < p.probs.length; i++) {
    if (!(p.labelMask[i]! > 0.5) || !Number.isFinite(p.probs[i]!)) continue;
    const q = Math.min(1 - 1e-7, Math.max(1e-7, p.probs[i]!));
    s += p.labels[i]! > 0.5 ? -Math.log(q) : -Math.log(1 - q);
    c++;
  }
  return c ? s / c : Number.NaN;
}

export function asLabelArrays(p: Predictions, k = NUM_LABELS): LabelArrays {
  return { probs: p.probs, labels: p.labels, mask: p.labelMask, n: p.probs.length / k, k };
}

function score(rec: EpochRecord['val'], selection: TrainOptions['selection']): number {
  return selection === 'loss' ? -rec.loss : rec[selection];
}

const FRESH_STATE: TrainState = {
  epochsDone: 0,
  history: [],
  bestEpoch: 0,
  bestScore: null,
  lastCheckpoint: null,
  done: false,
};

/** How the steps of an epoch are laid out, alone or over a data-parallel group. */
interface StepPlan {
  /** The group when there are several ranks; undefined when training alone. */
  dist: DataParallel | undefined;
  /** This process writes checkpoints and state.json (rank 0, or the only one). */
  root: boolean;
  steps: number;
  /** This rank's rows of step s (data parallel: its shard of the global batch). */
  rowsOf: (order: number[], s: number) => number[];
  /** The rows step s trains on across the group: what its loss is weighted by. */
  stepRows: (order: number[], s: number, b: Batch | null) => number;
}

function stepPlan(o: TrainOptions): StepPlan {
  const dist = o.dist && o.dist.worldSize > 1 ? o.dist : undefined;
  return {
    dist,
    root: !dist || dist.rank === 0,
    steps: dist
      ? stepsPerEpoch(o.trainIdx.length, o.batchSize, dist.worldSize)
      : Math.ceil(o.trainIdx.length / o.batchSize),
    rowsOf: (order, s) =>
      dist
        ? rankBatch(order, s, o.batchSize, dist.rank, dist.worldSize)
        : order.slice(s * o.batchSize, (s + 1) * o.batchSize),
    stepRows: (order, s, b) => (dist ? globalBatch(order, s, o.batchSize, dist.worldSize).length : b!.n),
  };
}

/**
 * The epoch's training loss, weighted by rows. Losses are read from the device in bursts (every
 * LOSS_READ_EVERY steps), so the rows of the steps not yet read are remembered, oldest first.
 */
class EpochLoss {
  private sum = 0;
  private n = 0;
  /** The steps not yet read: their 1-based number in the epoch and their rows. */
  private unreadSteps: { step: number; rows: number }[] = [];
  /** The newest loss read (NaN before the first). */
  last = Number.NaN;
  stepped(step: number, rows: number): void {
    this.unreadSteps.push({ step, rows });
  }
  get unread(): boolean {
    return this.unreadSteps.length > 0;
  }
  /** Adds the losses read; returns the first step whose loss is NaN or infinite (null when none). */
  take(r: StepLoss): { step: number; loss: number } | null {
    const losses = r.losses ?? [r.loss];
    const off = this.unreadSteps.length - losses.length;
    let bad: { step: number; loss: number } | null = null;
    losses.forEach((l, i) => {
      const at = this.unreadSteps[i + off];
      if (Number.isFinite(l)) {
        this.sum += l * (at?.rows ?? 0);
        this.n += at?.rows ?? 0;
      } else bad ??= { step: at?.step ?? 0, loss: l };
    });
    if (losses.length) this.last = losses[losses.length - 1]!;
    this.unreadSteps = [];
    return bad;
  }
  mean(): number {
    return this.n ? this.sum / this.n : Number.NaN;
  }
}

/**
 * Reads `dir/state.json` (or starts fresh), clears temp files a killed run left, and loads the last
 * epoch checkpoint when there is training left (or no best.ckpt to fall back on).
 */
async function resumeState(clf: ClassifierLike, o: TrainOptions, statePath: string, bestPath: string) {
  const st: TrainState = readJson<TrainState>(statePath) ?? { ...FRESH_STATE, history: [] };
  // a run killed mid-write (or by a full disk before this was caught) left `*.tmp-<pid>` files
  removeStaleTemps(o.dir);
  const keep = o.keepCheckpoints ?? 1;
  if (!Number.isInteger(keep) || keep < 1)
    throw new RangeError(`keepCheckpoints must be a positive integer, got ${String(keep)}`);
  // The full state is needed only to train on; a finished cell goes straight to best.ckpt.
  const trains = !st.done && st.epochsDone < o.epochs;
  if (st.lastCheckpoint && (trains || !existsSync(bestPath))) await clf.load(join(o.dir, st.lastCheckpoint));
  return { st, keep };
}

/** What errors call a training: its name, else its folder. */
const nameOf = (o: TrainOptions) => o.name ?? o.dir;

/**
 * A loss read as NaN or infinite: the step before it left the weights non-finite or on the way there,
 * and every later step trains on garbage, so the training stops before the epoch is saved.
 */
function nonFiniteLoss(o: TrainOptions, epoch: number, bad: { step: number; loss: number }): DataError {
  return new DataError(
    'non-finite-loss',
    `${nameOf(o)}, epoch ${epoch}, step ${bad.step}: the training loss is ${bad.loss}. Training diverged: lower the learning rate (or turn bf16 off, or look for a bad input); nothing of this epoch was saved`,
  );
}

/**
 * The training steps of one epoch over `order`; returns the mean training loss. A batch that fails
 * to load is trained on its readable images (unreadable.ts); a rank without rows still joins the
 * group's step. A loss read as NaN or infinite stops it (DataError `non-finite-loss`); the losses are
 * checked where they are read anyway (once per LOSS_READ_EVERY steps), never with a wait of their own.
 */
async function trainEpoch(
  clf: ClassifierLike,
  o: TrainOptions,
  plan: StepPlan,
  epoch: number,
  order: number[],
  wait: DataWait,
  unreadable: UnreadableTally,
): Promise<number> {
  const { dist, steps, rowsOf } = plan;
  // The loss is read from the device once per LOSS_READ_EVERY steps (and at the end of the epoch), so
  // steps in between never wait for it; a classifier without readLosses reads it every step.
  const lazyLoss = typeof clf.readLosses === 'function';
  const idle = async (readLoss: boolean) => {
    if (!clf.idleStep) throw new Error('data-parallel training needs a classifier with idleStep()');
    return clf.idleStep({ readLoss });
  };
  const loss = new EpochLoss();
  // Batch k+1 is read while step k runs.
  const batches = prefetch(
    steps,
    (s) => {
      const idx = rowsOf(order, s);
      return idx.length ? o.source(idx) : Promise.resolve(null);
    },
    { wait },
  );
  for await (const item of batches) {
    const s = item.i;
    if (o.signal?.stop) throw new InterruptedError(`interrupted in epoch ${epoch}`);
    const b = item.ok ? item.value : await readablePart(o.source, rowsOf(order, s), unreadable);
    if (!b && !dist) continue;
    // the loss of a group's step is the group's (all ranks agree)
    const readLoss = !lazyLoss || (s + 1) % LOSS_READ_EVERY === 0 || s === steps - 1;
    const r = b ? await clf.trainStep(b.x, b.n, b.labels, b.labelMask, { readLoss }) : await idle(readLoss);
    loss.stepped(s + 1, plan.stepRows(order, s, b));
    const bad = readLoss ? loss.take(r) : null;
    if (bad) throw nonFiniteLoss(o, epoch, bad);
    o.onProgress?.({
      epoch,
      epochs: o.epochs,
      step: s + 1,
      steps,
      ...(Number.isFinite(loss.last) ? { loss: loss.last } : {}),
    });
  }
  // the epoch's last steps may have been skipped (unreadable batches) before reading
  if (loss.unread && clf.readLosses) {
    const bad = loss.take(await clf.readLosses());
    if (bad) throw nonFiniteLoss(o, epoch, bad);
  }
  return loss.mean();
}

/**
 * Validation metrics of the model as it is now (sharded over the group, gathered on every rank). A
 * NaN output (the epoch's last step made the weights non-finite, after the last loss read) stops the
 * training as a NaN loss does, before anything of the epoch is saved.
 */
async function validateEpoch(
  clf: ClassifierLike,
  o: TrainOptions,
  plan: StepPlan,
  wait: DataWait,
  epoch: number,
): Promise<EpochRecord['val']> {
  let vp: Predictions;
  try {
    vp = await predictAllSharded((x, n) => clf.predict(x, n), o.source, o.valIdx, {
      batchSize: o.batchSize,
      wait,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(plan.dist ? { dist: plan.dist } : {}),
    });
  } catch (e) {
    if (!(e instanceof DataError && e.reason === 'non-finite-output')) throw e;
    throw new DataError(
      'non-finite-loss',
      `${nameOf(o)}, epoch ${epoch}, validation: ${e.message}. Training diverged: lower the learning rate (or turn bf16 off, or look for a bad input); nothing of this epoch was saved`,
    );
  }
  const va = asLabelArrays(vp);
  const m = computeMetrics(va, chooseThresholds(va, o.thresholdRule ?? 'youden'));
  return { macroAUROC: m.macroAUROC, meanLabelAccuracy: m.meanLabelAccuracy, loss: bceLoss(vp) };
}

/**
 * best.ckpt (weights only: what prediction needs) when the epoch improved, and `epoch-<e>.ckpt` (the
 * full state resume needs). Data parallel: only rank 0 writes, the others record nothing.
 */
async function saveEpochCheckpoints(
  clf: ClassifierLike,
  dir: string,
  bestPath: string,
  ckpt: string,
  improved: boolean,
  root: boolean,
): Promise<NonNullable<EpochRecord['checkpoint']>> {
  if (!root) return { seconds: 0, bytes: 0 };
  const tSave = performance.now();
  if (improved) await saveCheckpoint(clf, bestPath, { weightsOnly: true });
  await saveCheckpoint(clf, join(dir, ckpt));
  return {
    seconds: (performance.now() - tSave) / 1000,
    bytes: fileBytes(join(dir, ckpt)) + (improved ? fileBytes(bestPath) : 0),
  };
}

/** The state after `rec`: its history, the best epoch so far, and whether training is over. */
function afterEpoch(
  st: TrainState,
  rec: EpochRecord,
  ckpt: string,
  improved: boolean,
  sc: number,
  o: TrainOptions,
): TrainState {
  const next: TrainState = {
    epochsDone: rec.epoch,
    history: [...st.history, rec],
    bestEpoch: improved ? rec.epoch : st.bestEpoch,
    bestScore: improved ? (Number.isFinite(sc) ? sc : null) : st.bestScore,
    lastCheckpoint: ckpt,
    done: false,
  };
  const patience = o.patience ?? 0;
  if (patience > 0 && rec.epoch - next.bestEpoch >= patience) next.done = true;
  if (rec.epoch >= o.epochs) next.done = true;
  return next;
}

/**
 * Train `clf` with per-epoch checkpoints in `dir`, resuming from `dir/state.json` when present.
 * On return the classifier holds the weights of the best validation epoch.
 */
export async function trainWithCheckpoints(clf: ClassifierLike, o: TrainOptions): Promise<TrainState> {
  const statePath = join(o.dir, 'state.json');
  const bestPath = join(o.dir, 'best.ckpt');
  const resumed = await resumeState(clf, o, statePath, bestPath);
  const keep = resumed.keep;
  let st = resumed.st;
  const plan = stepPlan(o);
  while (!st.done && st.epochsDone < o.epochs) {
    const epoch = st.epochsDone + 1;
    const t0 = performance.now();
    const order = shuffled(o.trainIdx, epochSeed(o.seed, epoch));
    const wait = new DataWait();
    const unreadable = new UnreadableTally(
      o.trainIdx.length,
      o.maxUnreadableShare ?? MAX_UNREADABLE_SHARE,
      epoch,
    );
    const trainLoss = await trainEpoch(clf, o, plan, epoch, order, wait, unreadable);
    const trainSeconds = (performance.now() - t0) / 1000;
    const val = await validateEpoch(clf, o, plan, wait, epoch);
    const rec: EpochRecord = {
      epoch,
      trainLoss,
      val,
      seconds: 0,
      trainSeconds,
      dataWaitSeconds: wait.seconds,
      checkpoint: { seconds: 0, bytes: 0 },
      unreadable: unreadable.toJSON(),
    };
    const sc = score(rec.val, o.selection);
    const improved = st.bestScore === null || (Number.isFinite(sc) && sc > st.bestScore);
    const ckpt = `epoch-${epoch}.ckpt`;
    rec.checkpoint = await saveEpochCheckpoints(clf, o.dir, bestPath, ckpt, improved, plan.root);
    rec.seconds = (performance.now() - t0) / 1000;
    st = afterEpoch(st, rec, ckpt, improved, sc, o);
    if (plan.root) {
      writeJsonAtomic(statePath, st);
      pruneCheckpoints(o.dir, keep, st.lastCheckpoint);
    }
    // the others wait until rank 0's files are complete (a resume reads them on every rank)
    await plan.dist?.barrier();
    o.onEpoch?.(rec);
  }
  if (existsSync(bestPath)) await clf.load(bestPath);
  if (plan.root) pruneCheckpoints(o.dir, keep, st.lastCheckpoint);
  return st;
}

function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Keeps the newest `keep` full-state epoch checkpoints, and always the one state.json names. */
function pruneCheckpoints(dir: string, keep: number, named: string | null): void {
  const epochs = readdirSync(dir)
    .map((f) => /^epoch-(\d+)\.ckpt$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const e of epochs.slice(keep)) {
    const f = `epoch-${e}.ckpt`;
    if (f !== named) rmSync(join(dir, f), { force: true, recursive: true });
  }
}
