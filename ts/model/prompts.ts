/**
 * Zero-shot prompts: the default templates of the runs, the predictor and `cxrmask explain`, and the
 * one place a template becomes the five findings' texts. `{finding}` becomes the finding's text.
 */
import { FINDINGS } from '../common/labels.js';

/** The zero-shot positive prompt; `{finding}` becomes the finding's text. */
export const DEFAULT_PROMPT = 'a chest X-ray showing {finding}';
/** The zero-shot negative prompt; `{finding}` becomes the finding's text. */
export const DEFAULT_NEGATIVE_PROMPT = 'a chest X-ray showing no {finding}';

/** What a template's finding text replaces. */
export const FINDING_SLOT = '{finding}';

export function findingText(f: string): string {
  return f.toLowerCase();
}

export function fillPrompt(template: string, finding: string): string {
  return template.split(FINDING_SLOT).join(findingText(finding));
}

/** The positive (and, with a negative template, negative) prompt of each finding, in FINDINGS order. */
export interface FindingPrompts {
  prompts: string[];
  negativePrompts: string[] | null;
}

export function findingPrompts(prompt: string, negativePrompt: string | null): FindingPrompts {
  return {
    prompts: FINDINGS.map((f) => fillPrompt(prompt, f)),
    negativePrompts: negativePrompt ? FINDINGS.map((f) => fillPrompt(negativePrompt, f)) : null,
  };
}

/** The texts whose zero-shot logit explains finding `k`: its positive prompt, then its negative one. */
export function promptPair(p: FindingPrompts, k: number): string[] {
  const pos = p.prompts[k];
  if (pos === undefined)
    throw new RangeError(`finding must be an integer in [0,${p.prompts.length}), got ${k}`);
  return p.negativePrompts ? [pos, p.negativePrompts[k]!] : [pos];
}
