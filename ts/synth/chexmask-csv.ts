/** CheXmask's per-dataset CSV for a synthetic tree: its file name and id column, the rendered rows. */

import { join } from 'node:path';
import { writeFileAtomicAsync } from '../common/io.js';
import { CHEXMASK_FILE, CHEXMASK_ID_COLUMN, type DatasetName } from '../data/datasets/names.js';

/** Writes out/chexmask/<CheXmask file of the dataset> ('' lines are images without a row). */
export async function writeDatasetChexmask(
  chexDir: string,
  dataset: DatasetName,
  lines: string[],
): Promise<{ path: string; rows: number }> {
  const path = join(chexDir, CHEXMASK_FILE[dataset]);
  const all = [
    `${JSON.stringify(CHEXMASK_ID_COLUMN[dataset]).slice(1, -1)},Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width`,
    // PadChest's rows leave Height and Width blank (the join takes them from the image)
    ...lines.filter((l) => l !== '').map((l) => (dataset === 'padchest' ? l.replace(/,\d+,\d+$/, ',,') : l)),
  ];
  await writeFileAtomicAsync(path, `${all.join('\n')}\n`);
  return { path, rows: all.length - 1 };
}
