/** The five findings of the paper, in the fixed column order used by every label tensor. */
export const FINDINGS = [
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Pleural Effusion',
] as const;
export type Finding = (typeof FINDINGS)[number];
export const NUM_LABELS = FINDINGS.length;
