/** MIMIC-CXR-JPG behind the adapter interface: the index builder of ../mimic.ts, unchanged. */
import { buildIndex } from '../mimic.js';
import type { DatasetAdapter } from './adapter.js';
import { CHEXMASK_FILE, CHEXMASK_ID_COLUMN } from './names.js';

export const mimic: DatasetAdapter = {
  name: 'mimic',
  title: 'MIMIC-CXR-JPG (files/ and the mimic-cxr-2.0.0-{metadata,chexpert,split}.csv[.gz])',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.mimic,
  chexmaskFile: CHEXMASK_FILE.mimic,
  // MIMIC has an official validate split: validateFraction does not apply
  buildIndex: ({ dataset: _d, validateFraction: _v, readerRule: _r, ...opts }) => buildIndex(opts),
};
