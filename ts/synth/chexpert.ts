/**
 * The CheXpert layout for a synthetic plan: {train|valid}/patientNNNNN/studyK/viewV_{frontal|lateral}.jpg,
 * train.csv / valid.csv with CheXpert's header and `CheXpert-v1.0-small/` in front of every Path, and
 * CheXmask's CheXpert.csv keyed by the Path without that folder. Test-split patients go to valid/.
 */
import { join } from 'node:path';
import { FINDINGS } from '../common/labels.js';
import type { RawLabel, SynthImage } from './plan.js';
import type { PlannedImage } from './render.js';
import { writeTreeFile } from './write.js';

export const CHEXPERT_HEADER =
  'Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices';

export function chexpertLayout<T extends SynthImage & PlannedImage>(plan: T[]): T[] {
  const patients = new Map<string, { no: number; studies: Map<string, { no: number; views: number }> }>();
  return plan.map((im) => {
    let p = patients.get(im.subjectId);
    if (!p) {
      p = { no: patients.size + 1, studies: new Map() };
      patients.set(im.subjectId, p);
    }
    let st = p.studies.get(im.studyId);
    if (!st) {
      st = { no: p.studies.size + 1, views: 0 };
      p.studies.set(im.studyId, st);
    }
    const lateral = im.view === 'LATERAL' || im.view === 'LL';
    const folder = im.split === 'test' ? 'valid' : 'train';
    const id = `${folder}/patient${String(p.no).padStart(5, '0')}/study${st.no}/view${++st.views}_${lateral ? 'lateral' : 'frontal'}.jpg`;
    return {
      ...im,
      dicomId: id,
      subjectId: String(p.no).padStart(5, '0'),
      studyId: String(st.no),
      view: lateral ? 'LATERAL' : im.view === 'PA' ? 'PA' : 'AP',
      path: id,
    };
  });
}

const fmt = (v: RawLabel) => (v === null ? '' : v.toFixed(1));

export async function writeChexpertTables(plan: SynthImage[], root: string): Promise<void> {
  const cols = CHEXPERT_HEADER.split(',');
  const rows: Record<'train' | 'valid', string[]> = { train: [CHEXPERT_HEADER], valid: [CHEXPERT_HEADER] };
  for (const im of plan) {
    const lateral = im.view === 'LATERAL';
    const cell: Record<string, string> = {
      Path: `CheXpert-v1.0-small/${im.dicomId}`,
      Sex: Number(im.subjectId) % 2 ? 'Male' : 'Female',
      Age: String(20 + (Number(im.subjectId) % 70)),
      'Frontal/Lateral': lateral ? 'Lateral' : 'Frontal',
      'AP/PA': lateral ? '' : im.view,
      'No Finding': im.labels.some((v) => v === 1) ? '' : '1.0',
    };
    FINDINGS.forEach((f, k) => {
      cell[f] = fmt(im.labels[k]);
    });
    rows[im.dicomId.startsWith('valid/') ? 'valid' : 'train'].push(cols.map((c) => cell[c] ?? '').join(','));
  }
  await writeTreeFile(join(root, 'train.csv'), `${rows.train.join('\n')}\n`);
  await writeTreeFile(join(root, 'valid.csv'), `${rows.valid.join('\n')}\n`);
}
