/** BiomedCLIP towers over the native addon: validated, queued (one op at a time), disposable. */

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { readJsonFile } from '../common/io.js';
import { checkArg, parseOptions, positiveInt, typedArray } from '../common/options.js';
import { type DeviceSpec, loadNative, type NativeClipModel } from '../native.js';
import {
  type Attribution,
  type AttributionOptions,
  attributionOptions,
  attributionResult,
} from './attribution.js';
import { holdArray, holdImages } from './hold.js';
import { withJsStack } from './js-stack.js';
import { NativeLifecycle } from './lifecycle.js';
import { type ModelMeta, modelFile, readModelMeta } from './meta.js';
import { ClipLoadSchema, EncodeSchema } from './options.js';
import { checkRecords, type ImageInput, isRecordBatch, variantsOf } from './records.js';

/** Options of `ClipModel.load`. */
export interface ClipLoadOptions {
  device?: DeviceSpec;
}

/** The BiomedCLIP towers of an export folder over the addon: image and text embeddings, attribution. */
export class ClipModel extends NativeLifecycle<NativeClipModel> {
  private constructor(
    native: NativeClipModel,
    readonly meta: ModelMeta,
    readonly dir: string,
  ) {
    super(native, 'ClipModel');
  }

  /**
   * Loads `<dir>/clip.pt` (TorchScript) on 'cpu' | 'cuda' | 'cuda:N' | 'auto' (default).
   * @throws {TypeError} (rejects) `dir` is not a non-empty string, or an unknown option.
   * @throws {RangeError} (rejects) a bad `device`.
   * @throws {ConfigError} (rejects) `<dir>/model.json` is missing, unreadable or has a field missing or
   *   out of range (readModelMeta), or its embedDim, contextLength or imageSize misstate the model
   *   (checkMetaAgainstModel).
   * @throws {Error} (rejects) the addon cannot be loaded.
   * @throws {NativeError} (rejects) LibTorch cannot load the file or the device (`ERR_TORCH`).
   */
  static async load(dir: string, options: ClipLoadOptions = {}): Promise<ClipModel> {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('model dir must be a non-empty string');
    const { device: dev } = parseOptions(ClipLoadSchema, options, 'ClipModel.load');
    const meta = readModelMeta(dir);
    const native = await withJsStack(
      loadNative().ClipModel.load(modelFile(dir, meta), dev),
      'ClipModel.load',
    );
    try {
      await checkMetaAgainstModel(native, meta, dir);
    } catch (e) {
      native.dispose();
      throw e;
    }
    return new ClipModel(native, meta, dir);
  }

  /** The device the model runs on, e.g. 'cpu' or 'cuda:0'. */
  get device(): string {
    return this.live().device;
  }
  /** Embedding size D (512 for BiomedCLIP). */
  get embedDim(): number {
    return this.meta.embedDim;
  }
  /** Input side S (224 for BiomedCLIP). */
  get imageSize(): number {
    return this.meta.imageSize;
  }
  /** Token ids per text L (256 for BiomedCLIP). */
  get contextLength(): number {
    return this.meta.contextLength;
  }
  /** The multiplier for cosine similarities: exp of the model's stored log scale. */
  get logitScale(): number {
    return Math.exp(this.live().logitScale);
  }
  /** The stored (log) value of `logit_scale`. */
  get logitScaleLog(): number {
    return this.live().logitScale;
  }
  /** Whether bf16 autocast is available on this device (CUDA, or a CPU with AVX512-BF16/AMX). */
  get bf16Supported(): boolean {
    return this.live().bf16Supported;
  }
  /**
   * Image embeddings [rows, embedDim] (not L2-normalised) for normalised images `x` [n,3,S,S], or for
   * n cache records (rows = n per variant asked for: originals first, then masked). The input is
   * taken when the call is made (ts/model/hold.ts): it may be reused or transferred right after the
   * call returned; views of `hostBytes` memory are borrowed instead of copied: do not write into those
   * until the promise settles.
   * @throws {TypeError} (synchronously) `x` is not a Float32Array/RecordBatch of the right kind, or an
   *   unknown option.
   * @throws {RangeError} (synchronously) `n` is not a positive integer, or `x` has the wrong length or
   *   image size (checkRecords).
   * @throws {Error} (synchronously) the model is disposed.
   * @throws {NativeError} (rejects) the native forward fails.
   */
  encodeImage(x: ImageInput, n: number, options: { bf16?: boolean } = {}): Promise<Float32Array> {
    const s = this.meta.imageSize;
    checkArg(positiveInt, n, 'n');
    const { bf16 } = parseOptions(EncodeSchema, options, 'encodeImage');
    const native = this.live();
    if (isRecordBatch(x)) {
      const shape = checkRecords(x, n, s);
      const stack = new Error('ClipModel.encodeImage');
      const held = holdImages(x.records, shape, x.pixels);
      return this.queue.run(() => withJsStack(native.encodeImage(held, shape, bf16, x.pixels), stack));
    }
    checkArg(typedArray(Float32Array, n * 3 * s * s, `[${n},3,${s},${s}]`), x, 'x');
    const stack = new Error('ClipModel.encodeImage');
    const held = holdImages(x, [n, 3, s, s]);
    return this.queue.run(() => withJsStack(native.encodeImage(held, [n, 3, s, s], bf16), stack));
  }

  /**
   * Attribution of the zero-shot logit to the input pixels (ts/model/attribution.ts). `text`: one
   * prompt embedding [D] (score s·cos(image, prompt)) or two [2,D] (positive, negative: s·(cos⁺ − cos⁻),
   * the per-finding protocol's logit), s = logitScale.
   * @throws {TypeError|RangeError} (synchronously) a bad `x`, `n`, `text` or option.
   * @throws {Error} (synchronously) the model is disposed.
   * @throws {NativeError} (rejects) the native passes fail.
   */
  attribute(
    x: ImageInput,
    n: number,
    text: Float32Array,
    options: AttributionOptions = {},
  ): Promise<Attribution> {
    return this.attributeScore(x, n, text, options);
  }

  private attributeScore(
    x: ImageInput,
    n: number,
    text: Float32Array,
    options: AttributionOptions,
    linearBias?: number,
  ): Promise<Attribution> {
    const s = this.meta.imageSize;
    const d = this.meta.embedDim;
    checkArg(positiveInt, n, 'n');
    if (!(text instanceof Float32Array) || (text.length !== d && text.length !== 2 * d))
      throw new TypeError(
        `text must be a Float32Array of ${d} or ${2 * d} values ([1|2,${d}] prompt embeddings)`,
      );
    const rows = n * variantsOf(x);
    const opts = {
      ...attributionOptions(options, rows, s),
      text,
      textRows: text.length / d,
      linearBias: linearBias ?? null,
    };
    const native = this.live();
    let data: Float32Array | Uint8Array;
    let shape: number[];
    const pixels = isRecordBatch(x) ? x.pixels : undefined;
    if (isRecordBatch(x)) {
      shape = checkRecords(x, n, s);
      data = x.records;
    } else {
      checkArg(typedArray(Float32Array, n * 3 * s * s, `[${n},3,${s},${s}]`), x, 'x');
      shape = [n, 3, s, s];
      data = x;
    }
    const stack = new Error('ClipModel.attribute');
    const held = holdImages(data, shape, pixels);
    const heldOpts = {
      ...opts,
      text: holdArray(text, 'text'),
      baseline: opts.baseline ? holdArray(opts.baseline, 'baseline') : null,
    };
    return this.queue.run(async () =>
      attributionResult(
        await withJsStack(native.attribute(held, shape, pixels, heldOpts), stack),
        opts.method,
        rows,
        s,
      ),
    );
  }

  /**
   * Attribution of a linear probe's logit over this image tower, embedding·weight + bias (the LP cells'
   * model: a head over unnormalised image embeddings).
   * @throws {TypeError|RangeError} (synchronously) a bad `x`, `n`, `weight`, `bias` or option.
   * @throws {Error} (synchronously) the model is disposed.
   * @throws {NativeError} (rejects) the native passes fail.
   */
  attributeLinear(
    x: ImageInput,
    n: number,
    weight: Float32Array,
    bias: number,
    options: AttributionOptions = {},
  ): Promise<Attribution> {
    const d = this.meta.embedDim;
    if (!(weight instanceof Float32Array) || weight.length !== d)
      throw new TypeError(`weight must be a Float32Array of ${d} values`);
    if (!Number.isFinite(bias)) throw new RangeError(`bias must be finite, got ${bias}`);
    return this.attributeScore(x, n, weight, options, bias);
  }

  /**
   * Text embeddings [n, embedDim] for token ids [n, contextLength] (see loadTokenizer).
   * @throws {TypeError} (synchronously) `ids` is not a BigInt64Array.
   * @throws {RangeError} (synchronously) `n` is not a positive integer or `ids` is not n × contextLength.
   * @throws {Error} (synchronously) the model is disposed.
   * @throws {NativeError} (rejects) the native forward fails.
   */
  encodeText(ids: BigInt64Array, n: number): Promise<Float32Array> {
    const l = this.meta.contextLength;
    checkArg(positiveInt, n, 'n');
    checkArg(typedArray(BigInt64Array, n * l, `[${n},${l}]`), ids, 'ids');
    const native = this.live();
    const stack = new Error('ClipModel.encodeText');
    const held = holdArray(ids, 'ids');
    return this.queue.run(() => withJsStack(native.encodeText(held, [n, l]), stack));
  }
}

/**
 * model.json's sizes, checked against the loaded model: one text of contextLength tokens must pass
 * the text tower and give embedDim numbers (the image tower projects to the same width), one
 * imageSize² image must pass the image tower, and the tokenizer exported beside it must pad to the
 * same length. A misstated embedDim would slice every embedding wrongly; a misstated contextLength
 * truncates prompts or fails on the first one; a misstated imageSize fails on the first image, in
 * words that do not name model.json.
 */
async function checkMetaAgainstModel(native: NativeClipModel, meta: ModelMeta, dir: string): Promise<void> {
  const file = join(dir, 'model.json');
  const L = meta.contextLength;
  if (L < 2) throw new ConfigError(`${file}: contextLength ${L} is not an integer ≥ 2`);
  const tokCfg = join(dir, 'tokenizer_config.json');
  if (existsSync(tokCfg)) {
    const max = readJsonFile(tokCfg, 'tokenizer_config.json').model_max_length;
    // Hugging Face writes ~1e30 when a tokenizer has no length of its own: nothing to compare then
    if (typeof max === 'number' && max < 1e6 && max !== L)
      throw new ConfigError(
        `${file}: contextLength ${L}, but the exported tokenizer (${tokCfg}) pads to ${max}`,
      );
  }
  let out: Float32Array;
  try {
    out = await native.encodeText(new BigInt64Array(L).fill(BigInt(meta.padId ?? 0)), [1, L]);
  } catch (e) {
    throw new ConfigError(
      `${file}: contextLength ${L}: the text tower refuses ${L} tokens (${(e as Error).message})`,
    );
  }
  if (out.length !== meta.embedDim)
    throw new ConfigError(
      `${file}: embedDim ${meta.embedDim}, but the model's embeddings have ${out.length} numbers`,
    );
  const s = meta.imageSize;
  const shape = [1, 3, s, s];
  try {
    await native.encodeImage(holdImages(new Float32Array(3 * s * s), shape), shape, false);
  } catch (e) {
    throw new ConfigError(
      `${file}: imageSize ${s}: the image tower refuses ${s}×${s} images (${(e as Error).message})`,
    );
  }
}
