/**
 * A segmenter from what a user points at: an exported folder (model.json + seg.pt: its own weights),
 * a `cxrmask segmenter train` output folder (train.json names the export; best.pt holds the trained
 * weights), or a .pt weights file inside such a folder.
 */

import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { readJson } from '../common/io.js';
import { flag, parseOptions } from '../common/options.js';
import { readSegmenterMeta } from '../model/meta.js';
import { SegmenterLoadSchema } from '../model/options.js';
import { Segmenter, type SegmenterLoadOptions, untrainedMessage } from '../model/segmenter.js';
import type { SegTrainState } from './train.js';

export interface SegmenterSource {
  /** The exported model folder (model.json, seg.pt). */
  dir: string;
  /** Trained weights to load over the export, or null for the export's own. */
  weights: string | null;
}

export function resolveSegmenter(path: string): SegmenterSource {
  if (!existsSync(path)) throw new ConfigError(`segmenter ${basename(path)}: no such file or folder`);
  const isFile = statSync(path).isFile();
  const folder = isFile ? dirname(path) : path;
  if (!isFile && existsSync(join(folder, 'model.json'))) return { dir: folder, weights: null };
  const state = readJson<SegTrainState>(join(folder, 'train.json'));
  if (!state) {
    throw new ConfigError(
      `segmenter ${basename(path)}: neither an exported segmenter (model.json) nor a \`cxrmask segmenter train\` folder (train.json)`,
    );
  }
  if (!state.modelDir || !existsSync(join(state.modelDir, 'model.json'))) {
    throw new ConfigError(
      `segmenter ${basename(path)}: train.json does not name an existing exported segmenter (retrain with this cxrmask, or give the export folder and the weights)`,
    );
  }
  const weights = isFile ? path : join(folder, 'best.pt');
  if (!existsSync(weights))
    throw new ConfigError(`segmenter ${basename(path)}: no best.pt yet (training has not finished an epoch)`);
  return { dir: state.modelDir, weights };
}

/** Options of `openSegmenter`. */
export interface OpenSegmenterOptions extends SegmenterLoadOptions {
  /** Accept a random-init export that was never trained (its masks are noise). Default false. */
  untrained?: boolean;
}

/** OpenSegmenterOptions as a schema: Segmenter.load's keys and `untrained`, a boolean. */
const OpenSegmenterSchema = SegmenterLoadSchema.extend({ untrained: flag }).strict();

/**
 * Loads the export, then the trained weights when there are any (disposed again if they do not fit).
 * @throws {TypeError|RangeError} (rejects) an unknown option, or one of the wrong type or out of range.
 * @throws {ConfigError} (rejects) the path is no segmenter, or an untrained export without `untrained: true`.
 */
export async function openSegmenter(path: string, options: OpenSegmenterOptions = {}): Promise<Segmenter> {
  // checked here, not only by Segmenter.load: `untrained` is ours, and `'no'` must not read as true
  parseOptions(OpenSegmenterSchema, options, 'openSegmenter');
  const { untrained, ...loadOptions } = options;
  const src = resolveSegmenter(path);
  if (!src.weights && !untrained && readSegmenterMeta(src.dir).source === 'random-init')
    throw new ConfigError(untrainedMessage(basename(path)));
  const seg = await Segmenter.load(src.dir, loadOptions);
  if (src.weights) {
    await seg.load(src.weights).catch(async (e) => {
      await seg.dispose();
      throw e;
    });
  }
  return seg;
}
