/**
 * The VinDr-CXR (PhysioNet) layout for a synthetic plan: MONOCHROME1 12-bit DICOMs at
 * {train|test}/<32 hex>.dicom, annotations/image_labels_train.csv with three radiologists per image
 * (one of them sometimes misses a finding or marks one that is not there, so the majority and
 * any-reader rules differ), image_labels_test.csv with consensus rows, and CheXmask's VinDr-CXR.csv.
 * VinDr is frontal only: laterals are left out.
 */
import { join } from 'node:path';
import { VINDR_FIVE } from '../data/datasets/vindr.js';
import type { SynthImage } from './plan.js';
import type { PlannedImage } from './render.js';
import { makeTreeFolder, writeTreeFile } from './write.js';

export function vindrLayout<T extends SynthImage & PlannedImage>(plan: T[]): T[] {
  return plan
    .filter((im) => im.view !== 'LATERAL' && im.view !== 'LL')
    .map((im) => {
      const id = im.dicomId.replaceAll('-', '').slice(0, 32);
      const folder = im.split === 'test' ? 'test' : 'train';
      return {
        ...im,
        dicomId: id,
        subjectId: id,
        studyId: id,
        view: 'PA',
        path: `${folder}/${id}.dicom`,
        format: 'dicom',
      };
    });
}

/** Reader r's read of finding k (readers 1 and 2 see what is shown; reader 3 errs now and then). */
export function vindrRead(im: SynthImage & { stream: number }, r: number, k: number): number {
  const shown = im.shown[k] ? 1 : 0;
  if (r < 3) return shown;
  return (im.stream + k) % 4 === 0 ? 1 - shown : shown;
}

export async function writeVindrTables(
  plan: (SynthImage & { stream: number })[],
  root: string,
): Promise<void> {
  await makeTreeFolder(join(root, 'annotations'));
  const train = [`image_id,rad_id,${VINDR_FIVE.join(',')},No finding`];
  const test = [`image_id,${VINDR_FIVE.join(',')},No finding`];
  for (const im of plan) {
    if (im.path.startsWith('test/')) {
      const v = VINDR_FIVE.map((_, k) => (im.shown[k] ? 1 : 0));
      test.push([im.dicomId, ...v, v.includes(1) ? 0 : 1].join(','));
      continue;
    }
    for (let r = 1; r <= 3; r++) {
      const v = VINDR_FIVE.map((_, k) => vindrRead(im, r, k));
      train.push([im.dicomId, `R${r}`, ...v, v.includes(1) ? 0 : 1].join(','));
    }
  }
  await writeTreeFile(join(root, 'annotations', 'image_labels_train.csv'), `${train.join('\n')}\n`);
  await writeTreeFile(join(root, 'annotations', 'image_labels_test.csv'), `${test.join('\n')}\n`);
}
