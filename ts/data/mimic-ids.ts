/**
 * The shapes of MIMIC-CXR identifiers, checked before an id is used to build a path: subject_id and
 * study_id are 8 digits (p10000032, s50414267), dicom_id is five dash-separated groups of 8 hex digits
 * (02aa804e-bde0afdd-112c0b34-7bc16630-4e384014). Anything else ("../../x", "a/b", "") could name a
 * file outside the image tree, so it is refused, never "sanitised".
 */
export const SUBJECT_ID = /^\d{8}$/;
export const STUDY_ID = /^\d{8}$/;
export const DICOM_ID = /^[0-9a-f]{8}(?:-[0-9a-f]{8}){4}$/i;

const SHAPES = {
  subject_id: { re: SUBJECT_ID, says: '8 digits' },
  study_id: { re: STUDY_ID, says: '8 digits' },
  dicom_id: { re: DICOM_ID, says: 'five dash-separated groups of 8 hex digits' },
} as const;
export type IdField = keyof typeof SHAPES;

/** null when `value` has the real shape of `field`, else a message naming the field and value. */
export function idProblem(field: IdField, value: string | undefined): string | null {
  const v = value ?? '';
  if (SHAPES[field].re.test(v)) return null;
  const shown = v.length > 60 ? `${v.slice(0, 60)}…` : v;
  return `field "${field}" is ${JSON.stringify(shown)}, not a MIMIC ${field} (${SHAPES[field].says})`;
}

/** The first id problem among a row's ids, or null. */
export function idsProblem(ids: Partial<Record<IdField, string>>): string | null {
  for (const [f, v] of Object.entries(ids) as [IdField, string][]) {
    const p = idProblem(f, v);
    if (p) return p;
  }
  return null;
}
