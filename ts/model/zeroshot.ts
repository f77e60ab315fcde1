/**
 * Zero-shot classification with the CLIP towers (domain.md §3.6). Image features are the cached
 * (unnormalised) embeddings; both sides are L2-normalised and scaled by exp(logit_scale).
 *
 * Two protocols, named in every output:
 * - `per-finding`: for each finding k, P(k) = softmax(s·cos(img, pos_k), s·cos(img, neg_k))[0] with
 *   pos_k = prompt(finding), neg_k = negativePrompt(finding) (CheXzero-style); without a negative
 *   prompt, P(k) = sigmoid(s·cos(img, pos_k)) (a ranking score). Used for the multi-label metrics.
 * - `softmax-5way`: P = softmax_k(s·cos(img, pos_k)) over the five findings; scored by top-1 accuracy
 *   on test images with exactly one positive (the "5x200" protocol; chance = 0.2).
 */
import { FINDINGS } from '../common/labels.js';
import type { ClipLike, TokenizerLike } from './backend.js';
import { findingPrompts } from './prompts.js';

export const ZS_PROTOCOLS = ['per-finding', 'softmax-5way'] as const;
export type ZeroShotProtocol = (typeof ZS_PROTOCOLS)[number];

export function l2normalize(x: Float32Array, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < d; j++) out[i * d + j] = x[i * d + j]! * inv;
  }
  return out;
}

export interface TextBank {
  positive: Float32Array; // [5, D], normalised
  negative: Float32Array | null; // [5, D], normalised
  prompts: string[];
  negativePrompts: string[] | null;
  dim: number;
}

export async function encodePrompts(
  clip: ClipLike,
  tok: TokenizerLike,
  prompt: string,
  negativePrompt: string | null,
): Promise<TextBank> {
  const { prompts, negativePrompts } = findingPrompts(prompt, negativePrompt);
  const d = clip.embedDim;
  const pos = await clip.encodeText(tok.encode(prompts), prompts.length);
  const neg = negativePrompts
    ? await clip.encodeText(tok.encode(negativePrompts), negativePrompts.length)
    : null;
  return {
    positive: l2normalize(pos, prompts.length, d),
    negative: neg ? l2normalize(neg, prompts.length, d) : null,
    prompts,
    negativePrompts,
    dim: d,
  };
}

/** Zero-shot probabilities [n, 5] for both protocols from image features [n, D]. */
export function zeroShotScores(
  features: Float32Array,
  n: number,
  bank: TextBank,
  logitScale: number,
): Record<ZeroShotProtocol, Float32Array> {
  const d = bank.dim;
  const k = FINDINGS.length;
  const img = l2normalize(features, n, d);
  const perFinding = new Float32Array(n * k);
  const soft = new Float32Array(n * k);
  const s = logitScale;
  const logits = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    let valid = true;
    for (let j = 0; j < d; j++) if (!Number.isFinite(features[i * d + j]!)) valid = false;
    for (let c = 0; c < k; c++) {
      let cp = 0;
      let cn = 0;
      for (let j = 0; j < d; j++) {
        const v = img[i * d + j]!;
        cp += v * bank.positive[c * d + j]!;
        if (bank.negative) cn += v * bank.negative[c * d + j]!;
      }
      logits[c] = s * cp;
      perFinding[i * k + c] = bank.negative ? 1 / (1 + Math.exp(s * (cn - cp))) : 1 / (1 + Math.exp(-s * cp));
    }
    let mx = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < k; c++) mx = Math.max(mx, logits[c]!);
    let z = 0;
    for (let c = 0; c < k; c++) z += Math.exp(logits[c]! - mx);
    for (let c = 0; c < k; c++) soft[i * k + c] = Math.exp(logits[c]! - mx) / z;
    if (!valid) {
      perFinding.fill(Number.NaN, i * k, (i + 1) * k);
      soft.fill(Number.NaN, i * k, (i + 1) * k);
    }
  }
  return { 'per-finding': perFinding, 'softmax-5way': soft };
}
