/**
 * The NIH ChestX-ray14 layout for a synthetic plan: PNGs under images/ named PPPPPPPP_FFF.png (a few
 * RGBA, as in the real set), Data_Entry_2017_v2020.csv with NIH's header (unquoted brackets and all),
 * train_val_list.txt / test_list.txt, and CheXmask's ChestX-Ray8.csv keyed by `Image Index`.
 * NIH labels have no uncertainty: a finding is listed when the phantom shows it.
 */
import { join } from 'node:path';
import { NIH_FIVE } from '../data/datasets/nih14.js';
import type { SynthImage } from './plan.js';
import type { PlannedImage } from './render.js';
import { writeTreeFile } from './write.js';

/** Gives each planned image its NIH name, path and PNG form; laterals are not part of NIH and are left out. */
export function nihLayout<T extends SynthImage & PlannedImage>(plan: T[]): T[] {
  const patients = new Map<string, { no: number; next: number }>();
  const out: T[] = [];
  for (const im of plan) {
    if (im.view === 'LATERAL' || im.view === 'LL') continue;
    let p = patients.get(im.subjectId);
    if (!p) {
      p = { no: patients.size + 1, next: 0 };
      patients.set(im.subjectId, p);
    }
    const id = `${String(p.no).padStart(8, '0')}_${String(p.next++).padStart(3, '0')}.png`;
    out.push({
      ...im,
      dicomId: id,
      subjectId: String(p.no).padStart(8, '0'),
      studyId: id.slice(9, 12),
      view: im.view === 'AP' ? 'AP' : 'PA',
      path: `images/${id}`,
      // about one in forty saved as RGBA, as a few real NIH files are
      format: im.stream % 40 === 7 ? 'png-rgba' : 'png',
    });
  }
  return out;
}

/** `Finding Labels` of an image: the findings it shows, or "No Finding". */
function findingLabels(im: SynthImage): string {
  const t = NIH_FIVE.filter((_, k) => im.shown[k]);
  return t.length ? t.join('|') : 'No Finding';
}

export async function writeNihTables(plan: SynthImage[], root: string): Promise<void> {
  const rows = [
    'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]',
  ];
  for (const im of plan) {
    const patient = Number(im.subjectId);
    rows.push(
      [
        im.dicomId,
        findingLabels(im),
        Number(im.studyId),
        patient,
        20 + (patient % 70),
        patient % 2 ? 'M' : 'F',
        im.view,
        im.width,
        im.height,
        0.143,
        0.143,
      ].join(','),
    );
  }
  await writeTreeFile(join(root, 'Data_Entry_2017_v2020.csv'), `${rows.join('\n')}\n`);
  const list = (want: (s: string) => boolean) =>
    `${plan
      .filter((im) => want(im.split))
      .map((im) => im.dicomId)
      .join('\n')}\n`;
  await writeTreeFile(
    join(root, 'train_val_list.txt'),
    list((s) => s !== 'test'),
  );
  await writeTreeFile(
    join(root, 'test_list.txt'),
    list((s) => s === 'test'),
  );
}
