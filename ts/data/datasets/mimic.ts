/**
 * MIMIC-CXR-JPG: streams the metadata, chexpert and split CSVs (plain or gzipped) of a MIMIC root and
 * produces one entry per kept image with its five labels, label mask and split.
 */
import { join } from 'node:path';
import type { ReasonCounter } from '../../common/errors.js';
import { parseOptions } from '../../common/options.js';
import { findCsv } from '../csv.js';
import {
  type IndexEntry,
  type IndexOptions,
  IndexOptionsSchema,
  type IndexSummary,
  imagePath,
  SPLITS,
  type Split,
} from '../mimic.js';
import { idProblem, idsProblem } from '../mimic-ids.js';
import { readStudyLabels } from '../mimic-labels.js';
import { readTable } from '../table.js';
import type { DatasetAdapter } from './adapter.js';
import { type EntryDraft, IndexBuild } from './common.js';
import { CHEXMASK_FILE, CHEXMASK_ID_COLUMN } from './names.js';

export const METADATA_COLUMNS = ['dicom_id', 'subject_id', 'study_id', 'ViewPosition'] as const;
export const SPLIT_COLUMNS = ['dicom_id', 'split'] as const;

/** The three tables of a MIMIC root; the split table only for the official split. */
function mimicTables(root: string, split: 'official' | 'patient') {
  const base = join(root, 'mimic-cxr-2.0.0-');
  return {
    metadata: findCsv(`${base}metadata`),
    chexpert: findCsv(`${base}chexpert`),
    split: split === 'official' ? findCsv(`${base}split`) : null,
  };
}

/** The official split CSV: split per dicom_id; bad rows are counted in `dropped`. */
async function readOfficialSplit(
  splitPath: string,
  dropped: ReasonCounter,
  duplicates: ReasonCounter,
): Promise<Map<string, Split>> {
  const splitByDicom = new Map<string, Split>();
  await readTable<Split>(splitPath, SPLIT_COLUMNS, { dropped, duplicates }, (csv) => {
    const d = csv.col('dicom_id');
    const s = csv.col('split');
    return {
      keyName: 'dicom_id',
      read: (r) => {
        const sp = r.cell(s);
        if (!SPLITS.includes(sp as Split))
          return { drop: 'bad-split-value', message: `${splitPath}, row ${r.row}, field "split": "${sp}"` };
        const idBad = idProblem('dicom_id', r.cell(d));
        if (idBad) return { drop: 'bad-split-id', message: `${splitPath}, row ${r.row}: ${idBad}` };
        return { key: r.cell(d), value: sp as Split };
      },
      take: (sp, _r, id) => splitByDicom.set(id, sp),
    };
  });
  return splitByDicom;
}

/** Rows/Columns of the metadata, when both are positive integers. */
function imageSize(
  values: readonly string[],
  rows: number,
  cols: number,
): { height: number; width: number } | null {
  const h = rows >= 0 ? Number(values[rows]) : Number.NaN;
  const w = cols >= 0 ? Number(values[cols]) : Number.NaN;
  return Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0 ? { height: h, width: w } : null;
}

/**
 * Streams the metadata and joins each image with its study's labels and its split; an image is kept
 * when its ids are sound, its view selected, its study labelled and (official split) its split listed.
 */
async function readMetadata(
  build: IndexBuild,
  metaPath: string,
  labels: { file: string; byStudy: Map<string, (number | null)[]> },
  split: { file: string; byDicom: Map<string, Split> } | null,
): Promise<void> {
  await build.readListing<string>(metaPath, METADATA_COLUMNS, (csv) => {
    const ci = {
      dicom: csv.col('dicom_id'),
      subject: csv.col('subject_id'),
      study: csv.col('study_id'),
      view: csv.col('ViewPosition'),
      rows: csv.header.indexOf('Rows'),
      cols: csv.header.indexOf('Columns'),
    };
    return {
      keyName: 'dicom_id',
      read: (r) => {
        const dicomId = r.cell(ci.dicom);
        // ids become a path below: anything but their real shape is refused here
        const idBad = idsProblem({
          dicom_id: dicomId,
          subject_id: r.cell(ci.subject),
          study_id: r.cell(ci.study),
        });
        if (idBad)
          return { drop: 'bad-metadata-row', message: `${metaPath}, row ${r.row}, id ${dicomId}: ${idBad}` };
        return { key: dicomId, value: dicomId };
      },
      take: (dicomId, r) => {
        const [subjectId, studyId, view] = [r.cell(ci.subject), r.cell(ci.study), r.cell(ci.view)];
        const where = `${metaPath}, row ${r.row}, id ${dicomId}`;
        if (!build.keepsView(view, where)) return;
        const raw = labels.byStudy.get(`${subjectId}/${studyId}`);
        if (!raw) {
          build.dropped.add(
            'no-labels-for-study',
            `${where}: study s${studyId} has no row in ${labels.file}`,
          );
          return;
        }
        const sp = split ? split.byDicom.get(dicomId) : 'train';
        if (!sp) {
          build.dropped.add('no-split-row', `${where}: dicom_id absent from ${split?.file}`);
          return;
        }
        const draft: EntryDraft = {
          dicomId,
          subjectId,
          studyId,
          view,
          split: sp,
          path: imagePath(subjectId, studyId, dicomId),
        };
        const e = build.admit(draft, raw, build.onDisk(where), where);
        const size = imageSize(r.values, ci.rows, ci.cols);
        if (e && size) Object.assign(e, size);
      },
    };
  });
}

/** Builds the index by streaming the three CSVs. Bad rows are dropped and counted per reason. */
export async function buildIndex(
  options: IndexOptions,
): Promise<{ entries: IndexEntry[]; summary: IndexSummary }> {
  const opts = parseOptions(IndexOptionsSchema, options, 'buildIndex');
  const files = mimicTables(opts.root, opts.split);
  const build = new IndexBuild(opts);
  const byStudy = await readStudyLabels(files.chexpert, build.dropped, build.duplicates);
  const byDicom = files.split ? await readOfficialSplit(files.split, build.dropped, build.duplicates) : null;
  await readMetadata(
    build,
    files.metadata,
    { file: files.chexpert, byStudy },
    files.split && byDicom ? { file: files.split, byDicom } : null,
  );
  if (opts.split === 'patient') build.splitByPatient();
  const { root: _r, ...rest } = opts;
  return build.finish({ options: rest, files });
}

export const mimic: DatasetAdapter = {
  name: 'mimic',
  title: 'MIMIC-CXR-JPG (files/ and the mimic-cxr-2.0.0-{metadata,chexpert,split}.csv[.gz])',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.mimic,
  chexmaskFile: CHEXMASK_FILE.mimic,
  // MIMIC has an official validate split: validateFraction does not apply
  buildIndex: ({ dataset: _d, validateFraction: _v, readerRule: _r, ...opts }) => buildIndex(opts),
};
