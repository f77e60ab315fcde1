/** Writes the MIMIC-CXR-JPG CSVs (metadata, chexpert labels, split; gzipped) and the CheXmask CSV for a plan. */

import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeFileAtomicAsync } from '../common/io.js';

import { FINDINGS } from '../common/labels.js';
import type { RawLabel, SynthImage } from './plan.js';
import { writeTreeFile } from './write.js';

const fmt = (v: RawLabel) => (v === null ? '' : v.toFixed(1));

const VIEW_MEANING: Record<string, string> = {
  PA: 'postero-anterior',
  AP: 'antero-posterior',
  LATERAL: 'lateral',
  LL: 'left lateral',
  '': '',
};

/** The chexpert table's labels beyond the five findings (blank, but 'No Finding' 1.0 when none is positive). */
const OTHER_LABELS = [
  'Enlarged Cardiomediastinum',
  'Fracture',
  'Lung Lesion',
  'Lung Opacity',
  'No Finding',
  'Pleural Other',
  'Pneumonia',
  'Pneumothorax',
  'Support Devices',
];

const CHEXPERT_HEADER = [
  'subject_id',
  'study_id',
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Enlarged Cardiomediastinum',
  'Fracture',
  'Lung Lesion',
  'Lung Opacity',
  'No Finding',
  'Pleural Effusion',
  'Pleural Other',
  'Pneumonia',
  'Pneumothorax',
  'Support Devices',
];

/** metadata.csv lines: one per image. */
function metadataLines(plan: SynthImage[]): string[] {
  const meta = [
    'dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning',
  ];
  for (const im of plan) {
    const date = 21000101 + (Number(im.studyId) % 28);
    meta.push(
      [
        im.dicomId,
        im.subjectId,
        im.studyId,
        'CHEST (PA AND LAT)',
        im.view,
        im.height,
        im.width,
        date,
        '101500.000',
        'CHEST (PA AND LAT)',
        VIEW_MEANING[im.view] ?? '',
        'Erect',
      ].join(','),
    );
  }
  return meta;
}

/** chexpert.csv lines: one per study (its first image's labels), and the number of studies. */
function chexpertLines(plan: SynthImage[]): { lines: string[]; studies: number } {
  const chex = [CHEXPERT_HEADER.join(',')];
  const seenStudy = new Set<string>();
  for (const im of plan) {
    const key = `${im.subjectId}/${im.studyId}`;
    if (seenStudy.has(key)) continue;
    seenStudy.add(key);
    const byName: Record<string, string> = {};
    FINDINGS.forEach((f, k) => {
      byName[f] = fmt(im.labels[k]);
    });
    const anyPos = im.labels.some((v) => v === 1);
    for (const ol of OTHER_LABELS) byName[ol] = ol === 'No Finding' ? (anyPos ? '' : '1.0') : '';
    chex.push([im.subjectId, im.studyId, ...CHEXPERT_HEADER.slice(2).map((h) => byName[h])].join(','));
  }
  return { lines: chex, studies: seenStudy.size };
}

/** The three MIMIC CSVs under mimicRoot; returns the number of studies (one chexpert row each). */
export async function writeMimicCsvs(plan: SynthImage[], mimicRoot: string): Promise<number> {
  const meta = metadataLines(plan);
  const chex = chexpertLines(plan);
  const split = [
    'dicom_id,study_id,subject_id,split',
    ...plan.map((im) => [im.dicomId, im.studyId, im.subjectId, im.split].join(',')),
  ];
  const base = join(mimicRoot, 'mimic-cxr-2.0.0-');
  await writeTreeFile(`${base}metadata.csv.gz`, gzipSync(`${meta.join('\n')}\n`));
  await writeTreeFile(`${base}chexpert.csv.gz`, gzipSync(`${chex.lines.join('\n')}\n`));
  await writeTreeFile(`${base}split.csv.gz`, gzipSync(`${split.join('\n')}\n`));
  return chex.studies;
}

/** The CheXmask CSV (rows '' are images without one); returns its path and row count. */
export async function writeChexmaskCsv(
  chexDir: string,
  chexRows: string[],
): Promise<{ path: string; rows: number }> {
  const chexmaskCsv = join(chexDir, 'MIMIC-CXR-JPG.csv');
  const chexLines = [
    'dicom_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width',
    ...chexRows.filter((r) => r !== ''),
  ];
  await writeFileAtomicAsync(chexmaskCsv, `${chexLines.join('\n')}\n`);
  return { path: chexmaskCsv, rows: chexLines.length - 1 };
}
