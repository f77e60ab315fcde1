/** The dataset adapters by name, and the one entry point that indexes any of them. */

import { parseOptions } from '../../common/options.js';
import type { IndexEntry, IndexSummary } from '../mimic.js';
import type { DatasetAdapter } from './adapter.js';
import { chexpert } from './chexpert.js';
import { type DatasetIndexOptions, DatasetIndexOptionsSchema } from './common.js';
import { mimic } from './mimic.js';
import type { DatasetName } from './names.js';
import { nih14 } from './nih14.js';
import { padchest } from './padchest.js';
import { vindr } from './vindr.js';

const ADAPTERS: Partial<Record<DatasetName, DatasetAdapter>> = { mimic, nih14, chexpert, padchest, vindr };

/** The adapter of `name`; a dataset without one yet is a clear error. */
export function adapterFor(name: DatasetName): DatasetAdapter {
  const a = ADAPTERS[name];
  if (!a)
    throw new RangeError(
      `dataset "${name}" has no adapter yet; available: ${Object.keys(ADAPTERS).join(', ')}`,
    );
  return a;
}

/** Indexes `options.dataset` (default mimic) under `options.root`. */
export async function buildDatasetIndex(
  options: DatasetIndexOptions,
): Promise<{ entries: IndexEntry[]; summary: IndexSummary }> {
  const opts = parseOptions(DatasetIndexOptionsSchema, options, 'buildDatasetIndex');
  return adapterFor(opts.dataset).buildIndex(opts);
}
