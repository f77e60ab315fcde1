/**
 * Inference-time masking as a library call for Node services:
 *
 *   const p = await MaskingPredictor.load({ modelDir: 'models/tiny', checkpoint: 'runs/…/cells/jft-original-s0/best.ckpt' });
 *   const { original, masked } = await p.predict(jpegBufferOrPath, chexmaskRow);
 *
 * Load once; `predict` may be called concurrently — calls are queued and run one at a time on the
 * model (the native layer runs one op per model). Without a checkpoint the model is used zero-shot
 * (per-finding protocol). With a checkpoint from a run: `finetune` (encoder + head, jft-* cells) or
 * `linear-probe` (frozen image tower + head, lp-* cells), inferred from the cell folder name.
 */

import type { Backend, ClassifierLike, ClipLike } from '../experiment/backend.js';
import { preprocessFor, readModelMeta, realBackend } from '../experiment/backend-real.js';
import { DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT } from '../experiment/config.js';
import { encodePrompts, type TextBank, zeroShotScores } from '../experiment/zeroshot.js';
import { FINDINGS, type Finding } from '../labels.js';
import { SerialQueue } from '../model/serial.js';

export type PredictorKind = 'zeroshot' | 'linear-probe' | 'finetune';

/** What `preprocess` of ts/images returns (only the fields used here). */
export interface PreprocessedPair {
  original: Float32Array;
  masked: Float32Array | null;
}

export type PreprocessFn = (
  image: string | Buffer,
  chexmask: unknown,
  options: { preprocess?: Record<string, unknown>; overlay?: Record<string, unknown> },
) => Promise<PreprocessedPair>;

export interface PredictorOptions {
  /** Exported model folder (model.json, clip.pt, tokenizer.json). */
  modelDir: string;
  /** `best.ckpt` of a trained cell; null/absent = zero-shot. */
  checkpoint?: string | null;
  /** Default: from the checkpoint path (lp-* → linear-probe, otherwise finetune), zeroshot without one. */
  kind?: PredictorKind;
  device?: 'auto' | 'cpu' | 'cuda';
  prompt?: string;
  negativePrompt?: string | null;
  /** Overlay (contour) options passed to the data layer (colours, alpha, thickness). */
  overlay?: Record<string, unknown>;
  /** Preprocessing overrides (default: matches model.json). */
  preprocess?: Record<string, unknown>;
  /** For tests / custom stacks. */
  backend?: Backend;
  preprocessFn?: PreprocessFn;
}

export type FindingScores = Record<Finding, number>;

export interface Prediction {
  kind: PredictorKind;
  /** Per-finding probabilities for the image as given. */
  original: FindingScores;
  /** The same with the CheXmask contours drawn in; null when no CheXmask row/masks were given. */
  masked: FindingScores | null;
  /** masked − original per finding (null without masks). */
  delta: FindingScores | null;
}

function toScores(p: Float32Array, row: number): FindingScores {
  const out = {} as FindingScores;
  FINDINGS.forEach((f, k) => {
    out[f] = p[row * FINDINGS.length + k]!;
  });
  return out;
}

export function inferKind(checkpoint: string | null | undefined): PredictorKind {
  if (!checkpoint) return 'zeroshot';
  return /(^|[\\/])lp-[^\\/]*[\\/]/.test(checkpoint) ? 'linear-probe' : 'finetune';
}

export class MaskingPredictor {
  /** One predict call on the model at a time (the native layer runs one op per model). */
  private readonly queue = new SerialQueue();
  private disposed = false;

  private constructor(
    readonly kind: PredictorKind,
    private readonly clip: ClipLike | null,
    private readonly clf: ClassifierLike | null,
    private readonly bank: TextBank | null,
    private readonly prep: PreprocessFn,
    private readonly prepOptions: { preprocess?: Record<string, unknown>; overlay?: Record<string, unknown> },
  ) {}

  static async load(o: PredictorOptions): Promise<MaskingPredictor> {
    const backend = o.backend ?? (await realBackend());
    const kind = o.kind ?? inferKind(o.checkpoint);
    if (kind !== 'zeroshot' && !o.checkpoint) throw new Error(`a ${kind} predictor needs a checkpoint`);
    const device = backend.resolveDevice(o.device ?? 'auto');
    const prep: PreprocessFn =
      o.preprocessFn ?? ((await import('../images/preprocess.js')).preprocess as unknown as PreprocessFn);
    const meta = o.preprocessFn ? {} : readModelMeta(o.modelDir);
    const prepOptions = {
      preprocess: { ...preprocessFor(meta), ...(o.preprocess ?? {}) },
      overlay: o.overlay ?? {},
    };
    let clip: ClipLike | null = null;
    let clf: ClassifierLike | null = null;
    let bank: TextBank | null = null;
    if (kind === 'zeroshot' || kind === 'linear-probe') clip = await backend.loadClip(o.modelDir, device);
    if (kind === 'zeroshot') {
      const tok = await backend.loadTokenizer(o.modelDir);
      bank = await encodePrompts(
        clip!,
        tok,
        o.prompt ?? DEFAULT_PROMPT,
        o.negativePrompt === undefined ? DEFAULT_NEGATIVE_PROMPT : o.negativePrompt,
      );
    } else if (kind === 'linear-probe') {
      clf = await backend.createClassifier({
        modelDir: null,
        inputDim: clip!.embedDim,
        numLabels: FINDINGS.length,
        device,
      });
      await clf.load(o.checkpoint!);
    } else {
      clf = await backend.createClassifier({ modelDir: o.modelDir, numLabels: FINDINGS.length, device });
      await clf.load(o.checkpoint!);
    }
    return new MaskingPredictor(kind, clip, clf, bank, prep, prepOptions);
  }

  /** Calls waiting or running. */
  get pending(): number {
    return this.queue.pending;
  }

  /**
   * Per-finding probabilities for `image` (JPEG/PNG path or Buffer) as given and with the anatomical
   * contours of `chexmask` (a CheXmask row from ts/data `joinChexmask`, or region masks) drawn in.
   */
  predict(image: string | Buffer, chexmask?: unknown): Promise<Prediction> {
    if (this.disposed) return Promise.reject(new Error('MaskingPredictor is disposed'));
    return this.queue.run(() => this.run(image, chexmask));
  }

  private async scores(x: Float32Array, n: number): Promise<Float32Array> {
    if (this.kind === 'finetune') return this.clf!.predict(x, n);
    const f = await this.clip!.encodeImage(x, n);
    if (this.kind === 'linear-probe') return this.clf!.predict(f, n);
    return zeroShotScores(f, n, this.bank!, this.clip!.logitScale)['per-finding'];
  }

  private async run(image: string | Buffer, chexmask: unknown): Promise<Prediction> {
    const pp = await this.prep(image, chexmask ?? null, this.prepOptions);
    const both = pp.masked !== null;
    const x = new Float32Array(pp.original.length * (both ? 2 : 1));
    x.set(pp.original, 0);
    if (both) x.set(pp.masked!, pp.original.length);
    const p = await this.scores(x, both ? 2 : 1);
    const original = toScores(p, 0);
    const masked = both ? toScores(p, 1) : null;
    let delta: FindingScores | null = null;
    if (masked) {
      delta = {} as FindingScores;
      for (const f of FINDINGS) delta[f] = masked[f] - original[f];
    }
    return { kind: this.kind, original, masked, delta };
  }

  /** Waits for queued calls, then frees the model. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await this.queue.idle();
    this.clf?.dispose();
    this.clip?.dispose();
  }
}

/** Convenience: the CheXmask row of one image from a CheXmask CSV (streams the file once). */
export async function chexmaskRowFor(csvPath: string, dicomId: string, minDice = 0): Promise<unknown> {
  const { dataModules } = await import('../experiment/backend-real.js');
  const data = await dataModules();
  const { rows } = await data.joinChexmask(csvPath, [dicomId], { minDice });
  const row = rows.get(dicomId);
  if (!row) throw new Error(`no CheXmask row for ${dicomId} in ${csvPath} (or it failed the quality filter)`);
  return row;
}
