/**
 * The datasets CheXmask covers that cxrmask reads, and for each the shape of its image id and the
 * image paths an id may have under the dataset root. Index entries name files, so an entry is only
 * accepted when its path is one its id gives (no "..", no absolute path, nothing outside the tree).
 * Kept free of the adapters so the index reader can check entries without loading them.
 */
import { DICOM_ID } from '../mimic-ids.js';

export const DATASETS = ['mimic', 'nih14', 'chexpert', 'padchest', 'vindr'] as const;
export type DatasetName = (typeof DATASETS)[number];

/**
 * vindr: how several radiologists' reads of an image become one label (majority: more than half of
 * its readers; any: at least one). The one list the index options, `cxrmask index --reader-rule` and
 * run configs' `data.readerRule` accept.
 */
export const READER_RULES = ['majority', 'any'] as const;
export type ReaderRule = (typeof READER_RULES)[number];

/** CheXmask's id column per dataset (its per-dataset CSVs). */
export const CHEXMASK_ID_COLUMN: Record<DatasetName, string> = {
  mimic: 'dicom_id',
  nih14: 'Image Index',
  chexpert: 'Path',
  padchest: 'ImageID',
  vindr: 'image_id',
};

/** CheXmask's file name per dataset. */
export const CHEXMASK_FILE: Record<DatasetName, string> = {
  mimic: 'MIMIC-CXR-JPG.csv',
  nih14: 'ChestX-Ray8.csv',
  chexpert: 'CheXpert.csv',
  padchest: 'Padchest.csv',
  vindr: 'VinDr-CXR.csv',
};

interface Shape {
  id: RegExp;
  says: string;
  /** The relative paths an image with this id may have. */
  path: (id: string) => RegExp;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export const SHAPES: Record<DatasetName, Shape> = {
  mimic: {
    id: DICOM_ID,
    says: 'five dash-separated groups of 8 hex digits',
    path: (id) => new RegExp(`^files/p\\d{2}/p\\d{8}/s\\d{8}/${esc(id)}\\.jpg$`),
  },
  // Box/GCS: images/NAME.png; Kaggle: images_001/images/NAME.png
  nih14: {
    id: /^\d{8}_\d{3}\.png$/,
    says: 'PPPPPPPP_FFF.png (patient, follow-up)',
    path: (id) => new RegExp(`^(?:images_\\d{3}/)?images/${esc(id)}$`),
  },
  chexpert: {
    id: /^(?:train|valid|test)\/patient\d{5}\/study\d{1,3}\/view\d{1,2}_(?:frontal|lateral)\.jpg$/,
    says: 'train|valid|test/patientNNNNN/studyK/viewV_frontal|lateral.jpg',
    path: (id) => new RegExp(`^${esc(id)}$`),
  },
  padchest: {
    id: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.png$/,
    says: 'a PNG file name (letters, digits, "_", "-", ".")',
    path: (id) => new RegExp(`^\\d{1,3}/${esc(id)}$`),
  },
  vindr: {
    id: /^[0-9a-f]{32}$/,
    says: '32 lowercase hex digits',
    path: (id) => new RegExp(`^(?:train|test)/${esc(id)}\\.(?:dicom|dcm|png)$`),
  },
};

export function isDatasetName(s: unknown): s is DatasetName {
  return typeof s === 'string' && (DATASETS as readonly string[]).includes(s);
}

/** null when `id` has the dataset's shape, else a message naming the field and the value. */
export function datasetIdProblem(dataset: DatasetName, field: string, id: unknown): string | null {
  const v = typeof id === 'string' ? id : '';
  if (SHAPES[dataset].id.test(v) && !v.includes('..')) return null;
  const shown = v.length > 60 ? `${v.slice(0, 60)}…` : v;
  return `field "${field}" is ${JSON.stringify(shown)}, not a ${dataset} image id (${SHAPES[dataset].says})`;
}

/** null when `path` is a path the dataset gives its image `id`, else a message. */
export function datasetPathProblem(dataset: DatasetName, id: string, path: unknown): string | null {
  if (typeof path === 'string' && SHAPES[dataset].path(id).test(path)) return null;
  return `${JSON.stringify(path)} is not a ${dataset} image path for id ${id}`;
}
