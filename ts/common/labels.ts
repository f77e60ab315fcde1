/** The five findings of the paper, in the fixed column order used by every label tensor. */
export const FINDINGS = [
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Pleural Effusion',
] as const;
/** One of the five findings, by its name in FINDINGS. */
export type Finding = (typeof FINDINGS)[number];
/** How many findings a classifier scores (5): the label width of every `[n, K]` array. */
export const NUM_LABELS = FINDINGS.length;
