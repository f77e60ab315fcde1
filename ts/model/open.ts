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

import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import { FINDINGS, NUM_LABELS } from '../common/labels.js';
import { flag, nonEmptyString, oneOf, parseOptions } from '../common/options.js';
import type { Attribution, AttributionOptions } from './attribution.js';
import type { CheckpointHeader, ClassifierLike, ClipLike, ModelBackend, TokenizerLike } from './backend.js';
import { realModelBackend } from './backend-real.js';
import { CallTracker } from './call-tracker.js';
import { classifierFor, MODEL_KINDS, type ModelKind, type TrainedKind } from './kinds.js';
import { readModelMeta } from './meta.js';
import { anObject, deviceOption, promptTemplate } from './options.js';
import {
  DEFAULT_NEGATIVE_PROMPT,
  DEFAULT_PROMPT,
  type FindingPrompts,
  findingPrompts,
  promptPair,
} from './prompts.js';
import type { ImageInput } from './records.js';
import { checkRunCheckpoint } from './run-model.js';
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
  /**
   * Zero-shot prompt templates (default DEFAULT_PROMPT / DEFAULT_NEGATIVE_PROMPT; null: no negative).
   * Each must contain `{finding}` (RangeError otherwise), as in a run config.
   */
  prompt?: string;
  negativePrompt?: string | null;
  /**
   * bf16 autocast of the image tower, whatever the kind (CUDA, or CPUs with AVX512-BF16/AMX; elsewhere
   * float32): its forward, and attribution unless its options say otherwise.
   */
  bf16?: boolean;
  /** For tests / custom stacks; default the addon's (realModelBackend). */
  backend?: ModelBackend;
  /**
   * The image tower of `modelDir`, already loaded on `device`, for zero-shot and linear-probe heads to
   * use instead of loading their own (several models measured one after the other share one). Borrowed:
   * the opened model's dispose() leaves it to the caller.
   */
  clip?: ClipLike;
}

/**
 * The options openModel and MaskingPredictor.load share, as zod pieces (common/options.ts). They sit
 * here, not in options.ts: options.ts importing the kinds would close a cycle (kinds → classifier →
 * options).
 */
export const MODEL_CHOICE = {
  modelDir: nonEmptyString,
  checkpoint: nonEmptyString.nullable().optional(),
  kind: oneOf(MODEL_KINDS).optional(),
  device: deviceOption,
  prompt: promptTemplate.optional(),
  negativePrompt: promptTemplate.nullable().optional(),
  backend: anObject.optional(),
};

/** `openModel(options)`: every key known, a misspelled one refused by name. */
const OpenModelSchema = z.object({ ...MODEL_CHOICE, bf16: flag, clip: anObject.optional() }).strict();

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
  /**
   * Loads now what the model would load on first use (a linear probe's image tower), so that a service
   * fails at startup rather than on its first request. Absent when nothing is loaded lazily.
   */
  ready?(): Promise<void>;
  /** Frees the native models once queued calls are done. */
  dispose(): Promise<void>;
}

/**
 * Opens the model `checkpoint` holds over `modelDir` (zero-shot without one).
 * @throws {TypeError|RangeError} (rejects) an unknown option, or one of the wrong type or out of range.
 * @throws {ConfigError} (rejects) `kind` is not the checkpoint's, a trained kind without a checkpoint,
 *   a head that does not fit the image tower of `modelDir`, or a run's checkpoint
 *   (`runs/<run>/cells/<cell>/best.ckpt`) over a model folder whose model.json or weights are not the
 *   ones the run recorded in data.json (its head was trained on that encoder); a run that recorded
 *   none: a warning (CXRMASK_MODEL_UNRECORDED).
 * @throws {DataError|NativeError} (rejects) the checkpoint cannot be read or does not fit.
 */
export async function openModel(options: OpenModelOptions): Promise<OpenedModel> {
  const o = parseOptions(OpenModelSchema, options, 'openModel') as OpenModelOptions;
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
  // a run's cell: its head was trained on the model its run recorded, which modelDir must still hold
  checkRunCheckpoint(o.modelDir, o.checkpoint!);
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
  const own = !o.clip;
  const clip = o.clip ?? (await backend.loadClip(o.modelDir, device));
  let tok: TokenizerLike;
  let bank: TextBank;
  try {
    tok = await backend.loadTokenizer(o.modelDir);
    bank = await encodePrompts(clip, tok, prompt, negative);
  } catch (e) {
    if (own) await clip.dispose();
    throw e;
  }
  // read once: the getter asks the native model, which a call still running after dispose() must not need
  const scale = clip.logitScale;
  const predictFeatures = async (f: Float32Array, n: number) =>
    zeroShotScores(f, n, bank, scale)['per-finding'];
  const towerOptions = o.bf16 ? { bf16: true } : {};
  // Each finding's pair of prompts is encoded on its own, when first explained.
  const texts = new Map<number, Float32Array>();
  const calls = new CallTracker(`the opened zero-shot model of ${o.modelDir}`);
  return {
    kind: 'zeroshot',
    device,
    embed: (x, n) => calls.run(() => clip.encodeImage(x, n, towerOptions)),
    predictFeatures: (f, n) => calls.run(() => predictFeatures(f, n)),
    predict: (x, n) => calls.run(async () => predictFeatures(await clip.encodeImage(x, n, towerOptions), n)),
    attribute: (x, n, k, options) =>
      calls.run(async () => {
        const attribute = need(clip.attribute, 'attribute', clip);
        let text = texts.get(k);
        if (!text) {
          const pair = promptPair(prompts, k);
          text = await clip.encodeText(tok.encode(pair), pair.length);
          texts.set(k, text);
        }
        return attribute(x, n, text, withBf16(o.bf16, options));
      }),
    describe: (k) => zeroShotLogit(prompts, k),
    dispose: async () => {
      await calls.close();
      if (own) await clip.dispose();
    },
  };
}

/** Finding index `k` checked: an integer in [0, NUM_LABELS). */
function checkFinding(k: number): number {
  if (!(Number.isInteger(k) && k >= 0 && k < NUM_LABELS))
    throw new RangeError(`finding must be an integer in [0,${NUM_LABELS}), got ${k}`);
  return k;
}

/** Attribution options with the opened model's bf16 where they do not say it themselves. */
function withBf16(
  bf16: boolean | undefined,
  options: AttributionOptions | undefined,
): AttributionOptions | undefined {
  return bf16 && options?.bf16 === undefined ? { ...options, bf16: true } : options;
}

function zeroShotLogit(p: FindingPrompts, k: number): string {
  const [pos, neg] = promptPair(p, k);
  return neg === undefined
    ? `zero-shot logit s·cos(img, "${pos}")`
    : `zero-shot logit s·(cos(img, "${pos}") − cos(img, "${neg}"))`;
}

/**
 * A linear probe's head over the CLIP image tower's embeddings (the grid's LP cells). The head must
 * fit the tower (model.json's embedDim, read without loading it); the tower itself is loaded when
 * first needed, so a caller that scores stored features (predictFeatures) never loads it.
 */
async function openHeadOverTower(
  o: OpenModelOptions,
  backend: ModelBackend,
  device: string,
  header: CheckpointHeader,
): Promise<OpenedModel> {
  const ckpt = o.checkpoint!;
  const width = o.clip?.embedDim ?? towerWidth(backend, o.modelDir);
  if (header.inputDim !== width)
    throw new ConfigError(
      `${ckpt} is a head over ${header.inputDim} features, but the image tower of ${o.modelDir} gives ${width}`,
    );
  const head = await backend.createClassifier(
    classifierFor(header.kind, { modelDir: o.modelDir, inputDim: width, device }),
  );
  try {
    await head.load(ckpt);
  } catch (e) {
    await head.dispose();
    throw e;
  }
  return openedClassifier(head, {
    kind: header.kind,
    headOnly: true,
    inputDim: header.inputDim,
    device,
    checkpoint: ckpt,
    modelDir: o.modelDir,
    backend,
    ...(o.clip ? { clip: o.clip } : {}),
    ...(o.bf16 ? { bf16: true } : {}),
  });
}

/** The image tower's embedding width from model.json (a backend may say it instead: tests' stand-ins). */
function towerWidth(backend: ModelBackend, modelDir: string): number {
  return backend.embedDim ? backend.embedDim(modelDir) : readModelMeta(modelDir).embedDim;
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
  return openedClassifier(clf, { kind: header.kind, headOnly: false, device, checkpoint: ckpt });
}

/** What `openedClassifier` needs to know about a classifier it did not make. */
export interface OpenedClassifierOptions {
  /** The kind it was made as. */
  kind: TrainedKind;
  /** A head over the image tower's embeddings (made without modelDir), not the tower and head in one. */
  headOnly: boolean;
  /** The device it runs on, as resolved. */
  device: string;
  /** The checkpoint its weights are (for describe()). */
  checkpoint: string;
  /** headOnly: the head's input width; the tower, when it arrives, must give as many features. */
  inputDim?: number;
  /** headOnly: the model folder whose image tower feeds the head, loaded on first embed/predict/attribute. */
  modelDir?: string;
  /** headOnly: where that tower comes from; default the addon's. */
  backend?: ModelBackend;
  /** headOnly: a tower already loaded, borrowed instead (dispose() leaves it to its owner). */
  clip?: ClipLike;
  /** headOnly: the tower's forward under bf16 autocast (where supported). */
  bf16?: boolean;
}

/**
 * A classifier already made and holding its weights (the grid's just-trained cell), as an opened model
 * of the kind it was made as: no checkpoint read again, nothing loaded twice. The opened model owns
 * `clf` from here: its dispose() frees it (and the tower it loaded, if any).
 */
export function openedClassifier(clf: ClassifierLike, o: OpenedClassifierOptions): OpenedModel {
  const describe = (k: number) =>
    `logit of ${FINDINGS[checkFinding(k)]} (${o.kind === 'finetune' ? 'fine-tuned' : 'linear-probe'} classifier ${o.checkpoint})`;
  if (!o.headOnly)
    return {
      kind: o.kind,
      device: o.device,
      predict: (x, n) => clf.predict(x, n),
      attribute: (x, n, k, options) => need(clf.attribute, 'attribute', clf)(x, n, k, options),
      describe,
      dispose: async () => {
        await clf.dispose();
      },
    };
  return openedHead(clf, o, describe);
}

/** openedClassifier of a head-only classifier: the head over the image tower of `o.modelDir`. */
function openedHead(
  clf: ClassifierLike,
  o: OpenedClassifierOptions,
  describe: (k: number) => string,
): OpenedModel {
  const modelDir = o.modelDir;
  if (!modelDir)
    throw new TypeError('openedClassifier: a head-only classifier needs modelDir (its image tower)');
  // The tower, loaded once on first use (a caller scoring stored features never needs it); none is
  // loaded after dispose(), and one that does not fit the head is refused (and freed).
  const calls = new CallTracker(`the opened model of ${o.checkpoint}`);
  let loading: Promise<ClipLike> | null = null;
  const fits = (t: ClipLike): ClipLike => {
    if (o.inputDim !== undefined && t.embedDim !== o.inputDim)
      throw new ConfigError(
        `${o.checkpoint} is a head over ${o.inputDim} features, but the image tower of ${modelDir} gives ${t.embedDim}`,
      );
    return t;
  };
  const load = async (): Promise<ClipLike> => {
    const t = await (o.backend ?? realModelBackend()).loadClip(modelDir, o.device);
    try {
      return fits(t);
    } catch (e) {
      await t.dispose();
      throw e;
    }
  };
  const tower = (): Promise<ClipLike> => {
    if (calls.disposed) return Promise.reject(new Error(`the opened model of ${o.checkpoint} is disposed`));
    if (o.clip) return Promise.resolve(fits(o.clip));
    loading ??= load().catch((e) => {
      loading = null;
      throw e;
    });
    return loading;
  };
  let weights: Promise<{ weight: Float32Array; bias: Float32Array }> | null = null;
  const towerOptions = o.bf16 ? { bf16: true } : {};
  const embed = async (x: ImageInput, n: number) => (await tower()).encodeImage(x, n, towerOptions);
  return {
    kind: o.kind,
    device: o.device,
    embed: (x, n) => calls.run(() => embed(x, n)),
    predictFeatures: (f, n) => calls.run(() => clf.predict(f, n)),
    predict: (x, n) => calls.run(async () => clf.predict(await embed(x, n), n)),
    attribute: (x, n, k, options) =>
      calls.run(async () => {
        checkFinding(k);
        const t = await tower();
        const attributeLinear = need(t.attributeLinear, 'attributeLinear', t);
        weights ??= need(clf.headWeights, 'headWeights', clf)();
        const { weight, bias } = await weights;
        const d = t.embedDim;
        return attributeLinear(
          x,
          n,
          weight.subarray(k * d, (k + 1) * d),
          bias[k]!,
          withBf16(o.bf16, options),
        );
      }),
    describe,
    ready: () =>
      calls.run(async () => {
        await tower();
      }),
    dispose: async () => {
      await calls.close();
      await clf.dispose();
      // a tower still loading is freed once it arrives; a borrowed one stays its owner's
      const t = loading ? await loading.catch(() => null) : null;
      await t?.dispose();
    },
  };
}

/** An optional backend method, bound, or a clear error when this backend's models lack it. */
function need<F extends (...a: never[]) => unknown>(f: F | undefined, name: string, self: object): F {
  if (!f) throw new Error(`this backend's models have no ${name}()`);
  return f.bind(self) as F;
}
