/**
 * The run's attribution step (docs/attribution.md): after the cells, the zero-shot model and every
 * trained cell's best.ckpt, each opened with openModel (the kind its checkpoint records), measured on
 * the same test rows (attribution-measure.ts); written to runDir/attribution.json. One image tower
 * serves the zero-shot model and every linear-probe head (a probe's logit is embedding·w + b).
 */

import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { readJson, writeJsonAtomic } from '../common/io.js';
import type { AttributionOptions } from '../model/attribution.js';
import type { ModelBackend } from '../model/backend.js';
import { realModelBackend } from '../model/backend-real.js';
import { type OpenModelOptions, openModel } from '../model/open.js';
import {
  type AttributionCache,
  type ExplainBatch,
  exampleFigures,
  type ModelAttribution,
  measureModelAttribution,
} from './attribution-measure.js';
import { setupOfCell } from './cells.js';

/** results.json's `attribution` (also runDir/attribution.json). */
export interface GridAttribution {
  method: string;
  steps: number;
  imagesPerModel: number;
  map: string;
  models: ModelAttribution[];
  /** Example figures (relative to the run folder): image | map on original | map on masked. */
  examples?: string[];
}

/** The config block (ts/experiment/config.ts `attribution`). */
export interface GridAttributionConfig {
  enabled: boolean;
  images: number;
  method: 'gradient' | 'smoothgrad' | 'ig';
  steps: number;
  samples: number;
}

/** What gridAttribution is given: the run's config, folder, cache, test rows, device and cells. */
export interface GridAttributionInput {
  config: {
    attribution: GridAttributionConfig;
    model: { dir: string };
    zeroshot: { enabled: boolean; prompt: string; negativePrompt: string | null };
  };
  runDir: string;
  /** The run's cache; attribution needs its filled-region masks (ts/images/cache.ts Cache). */
  cache: Omit<AttributionCache, 'regionMasks' | 'size'> & {
    size?: number;
    regionMasks?: AttributionCache['regionMasks'];
  };
  testRows: number[];
  /** The device the run resolved (the grid's). */
  device: string;
  /** bf16 autocast, as the grid resolved config.finetune.bf16 for `device`. */
  bf16: boolean;
  /** The trained cells, in run order: each one's best.ckpt is measured. */
  cells: readonly { id: string }[];
  imageRoot?: string;
  /** For tests / custom stacks; default the addon's. */
  backend?: ModelBackend;
}

/** Measures every model of the run (null when attribution is off); writes runDir/attribution.json. */
export async function gridAttribution(a: GridAttributionInput): Promise<GridAttribution | null> {
  const c = a.config.attribution;
  if (!c.enabled) return null;
  const cache = a.cache;
  if (typeof cache.regionMasks !== 'function' || typeof cache.size !== 'number')
    throw new ConfigError('attribution.enabled needs an image cache with region masks (cache format 3)');
  const opts = { method: c.method, steps: c.steps, samples: c.samples, bf16: a.bf16 };
  const backend = a.backend ?? realModelBackend();
  // One tower, borrowed by the zero-shot and linear-probe opens and freed here; none when no model
  // needs it (fine-tuned cells carry their own).
  const needsTower = a.config.zeroshot.enabled || a.cells.some((c) => setupOfCell(c.id) === 'linear-probe');
  const clip = needsTower ? await backend.loadClip(a.config.model.dir, a.device) : null;
  try {
    const models = await measureModels(
      a,
      { modelDir: a.config.model.dir, device: a.device, backend, ...(clip ? { clip } : {}) },
      opts,
    );
    const out: GridAttribution = {
      method: c.method,
      steps: c.steps,
      imagesPerModel: c.images,
      map: 'per pixel: sum over channels of |attribution|; explained: the logit of each finding the image is positive for',
      ...models,
    };
    writeJsonAtomic(join(a.runDir, 'attribution.json'), out);
    return out;
  } finally {
    await clip?.dispose();
  }
}

/** The zero-shot model (when enabled) and every cell, each opened over `base`, measured in turn. */
async function measureModels(
  a: GridAttributionInput,
  base: OpenModelOptions,
  opts: AttributionOptions,
): Promise<Pick<GridAttribution, 'models' | 'examples'>> {
  const withMasks = a.cache as AttributionCache;
  const measureOpts = {
    images: a.config.attribution.images,
    ...(a.imageRoot ? { imageRoot: a.imageRoot } : {}),
  };
  const models: ModelAttribution[] = [];
  const examples: string[] = [];
  let finetuneFigures = false;
  const measure = async (name: string, open: OpenModelOptions) => {
    const model = await openModel(open);
    try {
      const explain: ExplainBatch = (x, n, k) => model.attribute(x, n, k, opts);
      models.push(await measureModelAttribution(name, explain, withMasks, a.testRows, measureOpts));
      // Figures for the zero-shot model and the first fine-tuned cell (the model the paper's claim is about).
      const figures = model.kind === 'zeroshot' || (model.kind === 'finetune' && !finetuneFigures);
      if (model.kind === 'finetune') finetuneFigures = true;
      if (figures) examples.push(...(await exampleFigures(name, explain, withMasks, a.testRows, a.runDir)));
    } finally {
      await model.dispose();
    }
  };
  if (a.config.zeroshot.enabled) {
    const zs = a.config.zeroshot;
    await measure('zeroshot', { ...base, prompt: zs.prompt, negativePrompt: zs.negativePrompt });
  }
  for (const cell of a.cells)
    await measure(cell.id, {
      ...base,
      checkpoint: join(a.runDir, 'cells', cell.id, 'best.ckpt'),
      bf16: opts.bf16,
    });
  return { models, examples };
}

/** runDir/attribution.json when the run measured attribution (re-evaluation keeps it). */
export function readGridAttribution(runDir: string): GridAttribution | null {
  return readJson<GridAttribution>(join(runDir, 'attribution.json'));
}
