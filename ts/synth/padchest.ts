/**
 * The PadChest layout for a synthetic plan: 16-bit PNGs (12-bit values) at {ImageDir}/{ImageID}, the
 * label table with PadChest's columns and its list-literal `Labels`, and CheXmask's Padchest.csv keyed by
 * ImageID with Height and Width blank, as the real file has them.
 */
import { join } from 'node:path';
import { PADCHEST_TABLE } from '../data/datasets/padchest.js';
import type { SynthImage } from './plan.js';
import type { PlannedImage } from './render.js';
import { writeTreeFile } from './write.js';

const NAMES = ['atelectasis', 'cardiomegaly', 'consolidation', 'pulmonary edema', 'pleural effusion'];

export function padchestLayout<T extends SynthImage & PlannedImage>(plan: T[]): T[] {
  return plan.map((im) => {
    const lateral = im.view === 'LATERAL' || im.view === 'LL';
    const id = `${im.subjectId}${im.studyId}_${im.dicomId.slice(0, 8)}.png`;
    const dir = im.stream % 3;
    return {
      ...im,
      dicomId: id,
      view: lateral ? 'L' : im.view === 'AP' ? 'AP' : 'PA',
      path: `${dir}/${id}`,
      format: 'png16',
    };
  });
}

export async function writePadchestTable(plan: SynthImage[], root: string): Promise<void> {
  const rows = [
    ',ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,Projection,BitsStored_DICOM,Labels',
  ];
  plan.forEach((im, i) => {
    const labels = NAMES.filter((_, k) => im.shown[k]);
    const list = `"[${(labels.length ? labels : ['normal']).map((l) => `'${l}'`).join(', ')}]"`;
    rows.push(
      [
        i,
        im.dicomId,
        im.path.split('/')[0],
        20140915,
        im.studyId,
        im.subjectId,
        '1950.0',
        'F',
        im.view,
        12,
        list,
      ].join(','),
    );
  });
  await writeTreeFile(join(root, `${PADCHEST_TABLE}.csv`), `${rows.join('\n')}\n`);
}
