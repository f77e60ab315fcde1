/**
 * Inference-time masking as a library call for Node services:
 *
 *   const p = await MaskingPredictor.load({ modelDir: 'models/tiny', checkpoint: 'runs/…/cells/jft-original-s0/best.ckpt' });
 *   const { original, masked } = await p.predict(jpegBufferOrPath, chexmaskRow);
 *
 * With a segmenter (`segmenter:` a SegmenterLike, e.g. the addon's Segmenter) an image needs no
 * CheXmask row: its lung/heart masks are predicted on the model grid and their contours drawn in. A
 * row, when given, still wins (`maskSource` says which was used).
 *
 * Load once; `predict` may be called concurrently: JPEG decoding and the overlay PNG run alongside,
 * while the model steps (segment, classify) run one batch at a time (the native layer runs one op per
 * model): the calls that arrive while a batch runs go through the models together in the next one
 * (`maxBatch`, batch-queue.ts). The model is opened with openModel (ts/model/open.ts): zero-shot
 * (per-finding protocol) without a checkpoint; with one, the kind the checkpoint records (`finetune`:
 * encoder + head; `linear-probe`: a head over the image tower).
 */

import { basename, join } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import { FINDINGS, type Finding } from '../common/labels.js';
import { checkArg, flag, parseOptions } from '../common/options.js';
import { type ChexmaskRow, parseChexmaskRecord } from '../data/chexmask.js';
import { type EncodedImage, type ImageLimits, resolveImageLimits } from '../images/input.js';
import {
  chexmaskArg,
  planeToTensor,
  preprocessConflicts,
  type ResolvedPreprocess,
  resolvePreprocess,
} from '../images/preprocess.js';
import type { Geometry } from '../masks/geometry.js';
import {
  checkMaskSource,
  OverlayOptionsSchema,
  overlayRgb,
  paintPart,
  paintTable,
  type RegionMasks,
  type ResolvedOverlay,
} from '../masks/overlay.js';
import type { ModelBackend } from '../model/backend.js';
import { preprocessFor, realModelBackend } from '../model/backend-real.js';
import { CallTracker } from '../model/call-tracker.js';
import { withJsStack } from '../model/js-stack.js';
import type { ModelKind } from '../model/kinds.js';
import { type ModelMeta, readModelMeta } from '../model/meta.js';
import { MODEL_CHOICE, type OpenedModel, openModel } from '../model/open.js';
import { aFunction, anObject } from '../model/options.js';
import { type SegmenterLike, untrainedMessage } from '../model/segmenter.js';
import { type BatchCounts, BatchQueue } from './batch-queue.js';
import { checkpointSettings } from './model-source.js';
import { contourFromRegionBits, regionBitsOnGrid } from './region-bits.js';

/** The kinds of model a predictor serves (ts/model/kinds.ts). */
export type PredictorKind = ModelKind;

/** Images per model batch by default: a GPU is well used by then, and a CPU batch of 16 still answers in seconds. */
export const DEFAULT_MAX_BATCH = 16;
/** The largest `maxBatch`: 256 pairs of 224² float32 images are ~300 MB of input. */
export const MAX_BATCH = 256;

/** What `preprocess` of ts/images returns (only the fields used here). */
export interface PreprocessedPair {
  original: Float32Array;
  masked: Float32Array | null;
  /** size×size grayscale plane and contour map; needed for predicted masks and the overlay PNG. */
  gray?: Uint8Array;
  contour?: Uint8Array | null;
  geometry?: Geometry;
}

/** Replaces `preprocess` (tests, other image sources). */
export type PreprocessFn = (
  image: EncodedImage,
  chexmask: unknown,
  options: {
    preprocess?: Record<string, unknown>;
    overlay?: Record<string, unknown>;
    limits?: ImageLimits;
  },
) => Promise<PreprocessedPair>;

/** Options of `MaskingPredictor.load`. */
export interface PredictorOptions {
  /** Exported model folder (model.json, clip.pt, tokenizer.json). */
  modelDir: string;
  /** `best.ckpt` of a trained cell; null/absent = zero-shot. */
  checkpoint?: string | null;
  /** The kind the checkpoint must record (a ConfigError otherwise); default whatever it records, zeroshot without one. */
  kind?: PredictorKind;
  device?: 'auto' | 'cpu' | 'cuda';
  /** Zero-shot prompt templates, as openModel's: each must contain `{finding}` (RangeError otherwise). */
  prompt?: string;
  negativePrompt?: string | null;
  /**
   * The image tower under bf16 autocast (CUDA, or CPUs with AVX512-BF16/AMX; elsewhere float32), as
   * openModel's `bf16`. A segmenter given is loaded with its own `bf16`.
   */
  bf16?: boolean;
  /**
   * Overlay (contour) options passed to the data layer (colours, alpha, thickness). Default: for a
   * checkpoint inside runs/<run>/cells/, the contour thickness and source of the run's cache.
   */
  overlay?: Record<string, unknown>;
  /**
   * Preprocessing (preset, size, resize, kernel, mean, std, fastShrinkOnLoad). Default: for a
   * checkpoint inside runs/<run>/cells/, the preprocessing of the run's cache (a `--preset paper`
   * cache: squash resize and ImageNet statistics); otherwise model.json's size, mean and std with the
   * biomedclip preset. A field given that differs from what such a checkpoint was trained with is
   * refused (ConfigError naming it); the fields left out take the trained values.
   */
  preprocess?: Record<string, unknown>;
  /**
   * What an image may be (ts/images/input.ts): formats by their leading bytes (default JPEG, PNG),
   * largest file (default 256 MiB) and pixel count from the header (default 50 MP); others are
   * refused before decoding (DataError `image-corrupt` / `image-too-large` / `image-not-file`).
   */
  imageLimits?: ImageLimits;
  /**
   * Lung/heart segmenter for images given without a CheXmask row; its `size` must be the model's
   * image size. Once `load` succeeds the predictor owns it: `dispose()` disposes it too (a load that
   * throws leaves it to the caller).
   */
  segmenter?: SegmenterLike | null;
  /** Accept a segmenter that was never trained (`segmenter.trained === false`); default false. */
  untrained?: boolean;
  /**
   * The most images that go through the models together (default DEFAULT_MAX_BATCH): calls that
   * arrive while the models are busy are segmented and classified as one batch. 1 = one at a time.
   */
  maxBatch?: number;
  /** For tests / custom stacks. */
  backend?: ModelBackend;
  preprocessFn?: PreprocessFn;
}

/**
 * PredictorOptions as a schema: every key known (a misspelled one is refused by name); the nested
 * option objects (overlay, preprocess, imageLimits) are checked by their own parsers.
 */
const PredictorLoadSchema = z
  .object({
    ...MODEL_CHOICE,
    overlay: z.unknown().optional(),
    preprocess: z.unknown().optional(),
    imageLimits: z.unknown().optional(),
    segmenter: anObject.nullable().optional(),
    untrained: flag,
    bf16: flag,
    maxBatch: z.number().int().min(1).max(MAX_BATCH).optional(),
    preprocessFn: aFunction.optional(),
  })
  .strict();

/** One call's part of a model batch: its decoded images and the row whose masks they carry. */
interface ModelCall {
  pp: PreprocessedPair;
  row: ChexmaskRow | RegionMasks | null;
}

/** One call's answer from a model batch: probabilities [1 or 2, 5] (original, then masked). */
interface ModelAnswer {
  p: Float32Array;
  bits: Uint8Array | null;
  maskSource: MaskSource;
}

/** A probability per finding. */
export type FindingScores = Record<Finding, number>;

/** Where the masks of the masked input came from: a CheXmask row (or given masks), the segmenter, none. */
export type MaskSource = 'chexmask' | 'segmenter' | null;

/** Extra outputs of `predict`, each computed only when asked for. */
export interface PredictExtras {
  /** PNG (size×size RGB) of the masked input as the model sees it, before normalisation. */
  overlay?: boolean;
  /** The region bit map used (size×size: bit 1 right lung, 2 left lung, 4 heart). */
  masks?: boolean;
}

/** PredictExtras as a schema: a misspelled key (`maks`) is refused, and each is a boolean. */
const PredictExtrasSchema = z.object({ overlay: flag, masks: flag }).strict();

/** What `MaskingPredictor.predict` returns. */
export interface Prediction {
  kind: PredictorKind;
  /** Per-finding probabilities for the image as given. */
  original: FindingScores;
  /** The same with the lung/heart contours drawn in; null when there were no masks to draw. */
  masked: FindingScores | null;
  /** masked − original per finding (null without masks). */
  delta: FindingScores | null;
  maskSource: MaskSource;
  /** With `{ overlay: true }` and masks: the painted image as PNG bytes. */
  overlayPng?: Buffer | null;
  /** With `{ masks: true }` and masks: region bits on the model grid. */
  masks?: { size: number; bits: Uint8Array } | null;
}

/** Whether the call has a masked image too (its second row in a model batch). */
function hasMasked(pp: PreprocessedPair): boolean {
  return pp.masked !== null && pp.masked !== undefined;
}

function toScores(p: Float32Array, row: number): FindingScores {
  const out = {} as FindingScores;
  FINDINGS.forEach((f, k) => {
    out[f] = p[row * FINDINGS.length + k]!;
  });
  return out;
}

/**
 * Scores an X-ray as given and with the lung/heart contours drawn in (from a CheXmask row or the segmenter).
 */
export class MaskingPredictor {
  /** The model steps of concurrent calls, batched (the native layer runs one op per model). */
  private readonly batches: BatchQueue<ModelCall, ModelAnswer>;
  /** Calls accepted and not yet settled (decoding, queued for the model, or on it). */
  private readonly calls = new CallTracker('MaskingPredictor');

  private readonly pp: ResolvedPreprocess;
  private readonly ov: ResolvedOverlay;
  private readonly paint: Float32Array;

  readonly kind: PredictorKind;

  private constructor(
    private readonly model: OpenedModel,
    private readonly prep: PreprocessFn,
    private readonly prepOptions: {
      preprocess?: Record<string, unknown>;
      overlay?: Record<string, unknown>;
      limits: ImageLimits;
    },
    readonly segmenter: SegmenterLike | null,
    maxBatch: number,
  ) {
    this.batches = new BatchQueue((calls) => this.modelSteps(calls), maxBatch);
    this.kind = model.kind;
    this.pp = resolvePreprocess(prepOptions.preprocess);
    this.ov = parseOptions(OverlayOptionsSchema, prepOptions.overlay ?? {}, 'overlay');
    this.paint = paintTable(paintPart(this.ov));
  }

  /**
   * Loads the model (zero-shot, or the checkpoint) and the segmenter, ready to predict.
   * @throws {TypeError|RangeError} (rejects) an unknown option, or one of the wrong type or out of range.
   * @throws {ConfigError} (rejects) the segmenter was never trained or does not fit the model's images,
   *   `preprocess.size` is not the model's image size (model.json `imageSize`), or `preprocess` names
   *   a value other than the one a run's checkpoint was trained with; see openModel for
   *   the checkpoint (a run's cell over a model folder that is not the one its run recorded is refused).
   */
  static async load(options: PredictorOptions): Promise<MaskingPredictor> {
    const o = parseOptions(PredictorLoadSchema, options, 'MaskingPredictor.load') as PredictorOptions;
    const backend = o.backend ?? realModelBackend();
    const device = backend.resolveDevice(o.device ?? 'auto');
    const prep: PreprocessFn =
      o.preprocessFn ?? ((await import('../images/preprocess.js')).preprocess as unknown as PreprocessFn);
    const meta: Partial<ModelMeta> = o.preprocessFn ? {} : readModelMeta(o.modelDir);
    // A run's cell sees images made as its cache made them, contours drawn as thick.
    const trained = o.checkpoint ? checkpointSettings(o.checkpoint) : {};
    if (trained.preprocess && o.preprocess) {
      const conflicts = preprocessConflicts(trained.preprocess, o.preprocess);
      if (conflicts.length)
        throw new ConfigError(
          `preprocess ${conflicts.join(', ')}: ${o.checkpoint} was trained on images its run's cache preprocessed otherwise, and scores on other images would be skewed; leave these fields out`,
        );
    }
    const prepOptions = {
      preprocess: { ...(trained.preprocess ?? preprocessFor(meta)), ...(o.preprocess ?? {}) },
      overlay: o.overlay ?? trained.overlay ?? {},
      limits: resolveImageLimits(o.imageLimits),
    };
    const size = resolvePreprocess(prepOptions.preprocess).size;
    // otherwise the load succeeds and every call fails on the model's input length
    if (meta.imageSize !== undefined && size !== meta.imageSize) {
      throw new ConfigError(
        `preprocess.size ${size} is not the model's image size ${meta.imageSize} (${join(o.modelDir, 'model.json')} imageSize)`,
      );
    }
    if (o.segmenter && o.segmenter.trained === false && o.untrained !== true) {
      const dir = (o.segmenter as { dir?: unknown }).dir;
      throw new ConfigError(untrainedMessage(typeof dir === 'string' ? basename(dir) : '(given)'));
    }
    if (o.segmenter && o.segmenter.size !== size) {
      throw new ConfigError(
        `the segmenter's grid is ${o.segmenter.size}×${o.segmenter.size} but the classifier's images are ${size}×${size}`,
      );
    }
    // openModel frees what it made when it fails; the segmenter stays the caller's until a load succeeds.
    const model = await openModel({
      modelDir: o.modelDir,
      checkpoint: o.checkpoint ?? null,
      device,
      backend,
      ...(o.kind ? { kind: o.kind } : {}),
      ...(o.prompt === undefined ? {} : { prompt: o.prompt }),
      ...(o.negativePrompt === undefined ? {} : { negativePrompt: o.negativePrompt }),
      ...(o.bf16 ? { bf16: true } : {}),
    });
    try {
      // a service loads everything at startup: a missing or broken clip.pt fails here, not per request
      await model.ready?.();
    } catch (e) {
      await model.dispose();
      throw e;
    }
    return new MaskingPredictor(
      model,
      prep,
      prepOptions,
      o.segmenter ?? null,
      o.maxBatch ?? DEFAULT_MAX_BATCH,
    );
  }

  /** Calls accepted and not yet answered (decoding, waiting for the model, or on it). */
  get pending(): number {
    return this.calls.size;
  }

  /** Model batches run so far, the calls they took and the largest (for /metrics). */
  get batchCounts(): BatchCounts {
    return this.batches.stats;
  }

  /**
   * Per-finding probabilities for `image` (JPEG/PNG path or Buffer, whose bytes are copied at the
   * call: the caller may reuse it at once) as given and with the anatomical
   * contours drawn in: those of `chexmask` (a CheXmask row from ts/data `joinChexmask`, a raw CSV
   * record, or region masks) when given, else those the segmenter predicts, else none (masked null).
   * Every error rejects (none is thrown), with the stack of the call to `predict`.
   * @throws {TypeError|RangeError} (rejects) an unknown `extras` key or one that is not a boolean, or a
   *   `chexmask` that is not an object (a string, a number).
   * @throws {DataError} (rejects) an image that cannot be read or decoded within `imageLimits`, or a
   *   CheXmask row or region masks that do not fit it.
   * @throws {NativeError} (rejects) a model step failed (e.g. NaN in the image).
   * @throws {Error} (rejects) the predictor is disposed.
   */
  predict(image: EncodedImage, chexmask?: unknown, extras: PredictExtras = {}): Promise<Prediction> {
    // captured before anything is queued: the model steps run from the batch queue, not from here
    const caller = new Error('MaskingPredictor.predict');
    // the bytes as they are now: decoding starts later, and a service reuses its receive buffers (a
    // copy of a few MB next to decoding it); one over the size limit is refused uncopied
    const bytes =
      image instanceof Uint8Array &&
      image.length <= (this.prepOptions.limits.maxFileBytes ?? Number.POSITIVE_INFINITY)
        ? Buffer.from(image)
        : image;
    return withJsStack(
      this.calls.run(() => this.run(bytes, chexmask, extras)),
      caller,
      { prefix: false },
    );
  }

  private async run(image: EncodedImage, chexmask: unknown, options: unknown): Promise<Prediction> {
    const extras = parseOptions(PredictExtrasSchema, options, 'MaskingPredictor.predict');
    checkArg(chexmaskArg, chexmask, 'chexmask');
    // A raw CSV record is parsed once here, so that its region bits can be returned too.
    const row =
      chexmask && typeof chexmask === 'object' && 'Landmarks' in chexmask
        ? parseChexmaskRecord(chexmask as Record<string, string>, { keepRle: this.ov.source === 'rle' })
        : ((chexmask ?? null) as ChexmaskRow | RegionMasks | null);
    // Before decoding: region masks that do not fit their own width×height would draw wrong contours.
    if (row && typeof row === 'object' && 'masks' in row) {
      checkMaskSource(row, typeof image === 'string' ? image : undefined);
    }
    // Decoding (sharp, on libuv's pool) overlaps other images' model steps; only those are queued.
    const pp = await this.prep(image, row, this.prepOptions);
    const { p, bits, maskSource } = await this.batches.run({ pp, row });
    const both = hasMasked(pp);
    const original = toScores(p, 0);
    const masked = both ? toScores(p, 1) : null;
    let delta: FindingScores | null = null;
    if (masked) {
      delta = {} as FindingScores;
      for (const f of FINDINGS) delta[f] = masked[f] - original[f];
    }
    const out: Prediction = { kind: this.kind, original, masked, delta, maskSource };
    if (extras.overlay) out.overlayPng = both && pp.gray ? await this.overlayPng(pp.gray, pp.contour!) : null;
    if (extras.masks) {
      const b = bits ?? (row && pp.geometry ? regionBitsOnGrid(row, pp.geometry, this.ov.source) : null);
      out.masks = b ? { size: this.pp.size, bits: b } : null;
    }
    return out;
  }

  /**
   * Segment (the calls without a row) and classify, each as one batch: the part that runs on the
   * models. Each call's image, and its masked image when it has masks, are rows of one forward.
   */
  private async modelSteps(calls: ModelCall[]): Promise<ModelAnswer[]> {
    const bits = await this.segmentBatch(calls);
    const rows: Float32Array[] = [];
    for (const { pp } of calls) {
      rows.push(pp.original);
      if (hasMasked(pp)) rows.push(pp.masked!);
    }
    // one forward over every row: a row of another size would shift the others' answers (the
    // model checks the total against its own input size)
    const sample = rows[0]!.length;
    const wrong = rows.find((r) => r.length !== sample);
    if (wrong) throw new Error(`a preprocessed image has ${wrong.length} values, another ${sample}`);
    // one image without masks goes in as it is; otherwise the rows are laid end to end
    const x = rows.length === 1 ? rows[0]! : new Float32Array(rows.length * sample);
    if (rows.length > 1) {
      for (const [k, r] of rows.entries()) x.set(r, k * sample);
    }
    const p = await this.model.predict(x, rows.length);
    const L = FINDINGS.length;
    let row = 0;
    return calls.map((c, i) => {
      const n = hasMasked(c.pp) ? 2 : 1;
      const out = p.subarray(row * L, (row + n) * L);
      row += n;
      const maskSource: MaskSource = c.row ? 'chexmask' : bits[i] ? 'segmenter' : null;
      return { p: out, bits: bits[i] ?? null, maskSource };
    });
  }

  /** The segmenter's masks of the calls without a row (one forward), their contours drawn in. */
  private async segmentBatch(calls: ModelCall[]): Promise<(Uint8Array | null)[]> {
    const bits: (Uint8Array | null)[] = calls.map(() => null);
    const todo = this.segmenter ? calls.flatMap((c, i) => (c.row ? [] : [i])) : [];
    if (todo.length === 0) return bits;
    const seg = this.segmenter!;
    const S = seg.size;
    const plane = 3 * S * S;
    for (const i of todo) {
      const pp = calls[i]!.pp;
      if (!pp.gray) throw new Error('predicted masks need the gray plane from the preprocess function');
      if (pp.original.length !== plane)
        throw new Error(
          `a preprocessed image has ${pp.original.length} values, the segmenter takes ${plane}`,
        );
    }
    // one image goes in as it is (the native call copies its input); more are laid end to end
    const x = todo.length === 1 ? calls[todo[0]!]!.pp.original : new Float32Array(todo.length * plane);
    if (todo.length > 1) {
      for (const [k, i] of todo.entries()) x.set(calls[i]!.pp.original, k * plane);
    }
    const all = await seg.predictMasks(x, todo.length);
    if (all.length !== todo.length * S * S) {
      throw new Error(`the segmenter returned ${all.length} mask pixels for ${todo.length} ${S}×${S} images`);
    }
    todo.forEach((i, k) => {
      const pp = calls[i]!.pp;
      const b = all.slice(k * S * S, (k + 1) * S * S);
      pp.contour = contourFromRegionBits(b, S, this.ov.thickness);
      pp.masked = planeToTensor(pp.gray!, pp.contour, this.pp, this.paint);
      bits[i] = b;
    });
    return bits;
  }

  private overlayPng(gray: Uint8Array, contour: Uint8Array): Promise<Buffer> {
    const S = this.pp.size;
    const rgb = overlayRgb(gray, contour, paintPart(this.ov));
    return sharp(rgb, { raw: { width: S, height: S, channels: 3 } })
      .png()
      .toBuffer();
  }

  /** Refuses new calls, lets accepted ones finish, then frees the model (and the segmenter). */
  async dispose(): Promise<void> {
    await this.calls.close();
    await this.model.dispose();
    await this.segmenter?.dispose();
  }
}
