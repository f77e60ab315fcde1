/**
 * One model of any kind behind one interface. The kind comes from the checkpoint (what
 * Classifier.save recorded, read back with readHeader), or is `zeroshot` without one; a `kind` given
 * by the caller is checked against it, never used in its place.
 *
 *   const m = await openModel({ modelDir: 'models/tiny', checkpoint: 'runs/…/cells/lp-masked-s0/best.ckpt' });
 *   m.kind;                            // 'linear-probe'
 *   const p = await m.predict(x, n);   // [n, 5] per-finding probabilities
 *   const a = await m.attribute(x, n, 1, { method: 'ig' });
 *   await m.dispose();
 */
import { ConfigError } from '../common/errors.js';
import { FINDINGS, NUM_LABELS } from '../common/labels.js';
import type { Attribution, AttributionOptions } from './attribution.js';
import type { CheckpointHeader, ClassifierLike, ClipLike, ModelBackend, TokenizerLike } from './backend.js';
import { realModelBackend } from './backend-real.js';
import { classifierFor, type ModelKind } from './kinds.js';
import {
  DEFAULT_NEGATIVE_PROMPT,
  DEFAULT_PROMPT,
  type FindingPrompts,
  findingPrompts,
  promptPair,
} from './prompts.js';
import type { ImageInput } from './records.js';
import { encodePrompts, type TextBank, zeroShotScores } from './zeroshot.js';

/** Options of `openModel`: the model folder, the checkpoint (none for zero-shot) and how to run it. */
export interface OpenModelOptions {
  /** Exported model folder (model.json, clip.pt, tokenizer.json). */
  modelDir: string;
  /** A classifier checkpoint written by Classifier.save (a run's best.ckpt); null/absent = zero-shot. */
  checkpoint?: string | null;
  /** The kind the caller expects: a checkpoint recording another kind is refused (ConfigError). */
  kind?: ModelKind;
  /** 'auto' (default), 'cpu', 'cuda' or 'cuda:N'. */
  device?: string;
  /** Zero-shot prompt templates (default DEFAULT_PROMPT / DEFAULT_NEGATIVE_PROMPT; null: no negative). */
  prompt?: string;
  negativePrompt?: string | null;
  /** bf16 autocast of a fine-tuned classifier (CUDA, or CPUs with AVX512-BF16/AMX). */
  bf16?: boolean;
  /** For tests / custom stacks; default the addon's (realModelBackend). */
  backend?: ModelBackend;
}

/** One model of any kind, opened: what it scores, explains and embeds, whatever its kind. */
export interface OpenedModel {
  readonly kind: ModelKind;
  /** The device it runs on, as resolved ('cpu', 'cuda', …). */
  readonly device: string;
  /** Per-finding probabilities [rows, 5] of images (zero-shot: the per-finding protocol). */
  predict(x: ImageInput, n: number): Promise<Float32Array>;
  /** The CLIP image tower's embeddings [rows, D]: zero-shot and head-only linear probe. */
  embed?(x: ImageInput, n: number): Promise<Float32Array>;
  /** predict() from those embeddings (as `embed` returns them), without the image tower. */
  predictFeatures?(features: Float32Array, n: number): Promise<Float32Array>;
  /** Attribution of finding `finding`'s logit (zero-shot: s·(cos(img, pos) − cos(img, neg))) to the pixels. */
  attribute(x: ImageInput, n: number, finding: number, options?: AttributionOptions): Promise<Attribution>;
  /** What `attribute` explains, in words (for figures and JSON). */
  describe(finding: number): string;
  /** Frees the native models once queued calls are done. */
  dispose(): Promise<void>;
}

/**
 * Opens the model `checkpoint` holds over `modelDir` (zero-shot without one).
 * @throws {ConfigError} (rejects) `kind` is not the checkpoint's, a trained kind without a checkpoint,
 *   or a head that does not fit the image tower of `modelDir`.
 * @throws {DataError|NativeError} (rejects) the checkpoint cannot be read or does not fit.
 */
export async function openModel(o: OpenModelOptions): Promise<OpenedModel> {
  const backend = o.backend ?? realModelBackend();
  const device = backend.resolveDevice(o.device ?? 'auto');
  const header = o.checkpoint ? await backend.readCheckpointHeader(o.checkpoint) : null;
  const kind: ModelKind = header?.kind ?? 'zeroshot';
  if (o.kind && o.kind !== kind) {
    throw new ConfigError(
      o.checkpoint
        ? `${o.checkpoint} holds a ${kind} model, not ${o.kind}`
        : `a ${o.kind} model needs a checkpoint`,
    );
  }
  if (!header) return openZeroShot(o, backend, device);
  if (header.numLabels !== NUM_LABELS)
    throw new ConfigError(`${o.checkpoint} has ${header.numLabels} labels, not the ${NUM_LABELS} findings`);
  return header.headOnly
    ? openHeadOverTower(o, backend, device, header)
    : openClassifier(o, backend, device, header);
}

async function openZeroShot(
  o: OpenModelOptions,
  backend: ModelBackend,
  device: string,
): Promise<OpenedModel> {
  const prompt = o.prompt ?? DEFAULT_PROMPT;
  const negative = o.negativePrompt === undefined ? DEFAULT_NEGATIVE_PROMPT : o.negativePrompt;
  const prompts = findingPrompts(prompt, negative);
  const clip = await backend.loadClip(o.modelDir, device);
  let tok: TokenizerLike;
  let bank: TextBank;
  try {
    tok = await backend.loadTokenizer(o.modelDir);
    bank = await encodePrompts(clip, tok, prompt, negative);
  } catch (e) {
    await clip.dispose();
    throw e;
  }
  const predictFeatures = async (f: Float32Array, n: number) =>
    zeroShotScores(f, n, bank, clip.logitScale)['per-finding'];
  // Each finding's pair of prompts is encoded on its own, when first explained.
  const texts = new Map<number, Float32Array>();
  return {
    kind: 'zeroshot',
    device,
    embed: (x, n) => clip.encodeImage(x, n),
    predictFeatures,
    predict: async (x, n) => predictFeatures(await clip.encodeImage(x, n), n),
    attribute: async (x, n, k, options) => {
      const attribute = need(clip.attribute, 'attribute', clip);
      let text = texts.get(k);
      if (!text) {
        const pair = promptPair(prompts, k);
        text = await clip.encodeText(tok.encode(pair), pair.length);
        texts.set(k, text);
      }
      return attribute(x, n, text, options);
    },
    describe: (k) => zeroShotLogit(prompts, k),
    dispose: async () => {
      await clip.dispose();
    },
  };
}

function zeroShotLogit(p: FindingPrompts, k: number): string {
  const [pos, neg] = promptPair(p, k);
  return neg === undefined
    ? `zero-shot logit s·cos(img, "${pos}")`
    : `zero-shot logit s·(cos(img, "${pos}") − cos(img, "${neg}"))`;
}

function classifierLogit(header: CheckpointHeader, ckpt: string, k: number): string {
  return `logit of ${FINDINGS[k]} (${header.kind === 'finetune' ? 'fine-tuned' : 'linear-probe'} classifier ${ckpt})`;
}

/** A linear probe's head over the CLIP image tower's embeddings (the grid's LP cells). */
async function openHeadOverTower(
  o: OpenModelOptions,
  backend: ModelBackend,
  device: string,
  header: CheckpointHeader,
): Promise<OpenedModel> {
  const ckpt = o.checkpoint!;
  let clip: ClipLike | null = null;
  let clf: ClassifierLike | null = null;
  try {
    clip = await backend.loadClip(o.modelDir, device);
    if (header.inputDim !== clip.embedDim)
      throw new ConfigError(
        `${ckpt} is a head over ${header.inputDim} features, but the image tower of ${o.modelDir} gives ${clip.embedDim}`,
      );
    clf = await backend.createClassifier(
      classifierFor(header.kind, { modelDir: o.modelDir, inputDim: clip.embedDim, device }),
    );
    await clf.load(ckpt);
  } catch (e) {
    await clf?.dispose();
    await clip?.dispose();
    throw e;
  }
  const tower = clip;
  const head = clf;
  let weights: Promise<{ weight: Float32Array; bias: Float32Array }> | null = null;
  return {
    kind: header.kind,
    device,
    embed: (x, n) => tower.encodeImage(x, n),
    predictFeatures: (f, n) => head.predict(f, n),
    predict: async (x, n) => head.predict(await tower.encodeImage(x, n), n),
    attribute: async (x, n, k, options) => {
      const attributeLinear = need(tower.attributeLinear, 'attributeLinear', tower);
      weights ??= need(head.headWeights, 'headWeights', head)();
      const { weight, bias } = await weights;
      const d = tower.embedDim;
      if (!(k >= 0 && k < NUM_LABELS)) throw new RangeError(`finding must be in [0,${NUM_LABELS}), got ${k}`);
      return attributeLinear(x, n, weight.subarray(k * d, (k + 1) * d), bias[k]!, options);
    },
    describe: (k) => classifierLogit(header, ckpt, k),
    dispose: async () => {
      await head.dispose();
      await tower.dispose();
    },
  };
}

/** A classifier that holds its image tower: fine-tuned, or a linear probe made with a frozen tower. */
async function openClassifier(
  o: OpenModelOptions,
  backend: ModelBackend,
  device: string,
  header: CheckpointHeader,
): Promise<OpenedModel> {
  const ckpt = o.checkpoint!;
  const rest = {
    ...(header.freezeEncoder ? { freezeEncoder: true } : {}),
    ...(o.bf16 ? { bf16: true } : {}),
  };
  const clf = await backend.createClassifier(
    classifierFor('finetune', { modelDir: o.modelDir, inputDim: header.inputDim, device }, rest),
  );
  try {
    await clf.load(ckpt);
  } catch (e) {
    await clf.dispose();
    throw e;
  }
  return {
    kind: header.kind,
    device,
    predict: (x, n) => clf.predict(x, n),
    attribute: (x, n, k, options) => need(clf.attribute, 'attribute', clf)(x, n, k, options),
    describe: (k) => classifierLogit(header, ckpt, k),
    dispose: async () => {
      await clf.dispose();
    },
  };
}

/** An optional backend method, bound, or a clear error when this backend's models lack it. */
function need<F extends (...a: never[]) => unknown>(f: F | undefined, name: string, self: object): F {
  if (!f) throw new Error(`this backend's models have no ${name}()`);
  return f.bind(self) as F;
}
