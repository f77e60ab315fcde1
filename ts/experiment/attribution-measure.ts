/**
 * The paper's interpretability claim, measured: for a model (a grid cell) and each test variant, the
 * share of attribution mass inside lungs ∪ heart (the cache's filled regions, mask bits 3-5) and, on
 * synthetic data, inside the explained finding's drawn region; with a paired bootstrap 95 % CI of
 * masked − original over the test images. Each image is explained for each finding it is labelled
 * positive for; its number is the mean over those findings. Kept cheap: `images` test rows per model.
 */

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/io.js';
import { FINDINGS, NUM_LABELS } from '../common/labels.js';
import { mulberry32 } from '../common/random.js';
import { nanMean, quantile } from '../common/stats.js';
import { attributionFigure, sharedScale } from '../explain/figure.js';
import {
  type FindingLocalisation,
  type LocalisationSample,
  summarizeLocalisation,
} from '../explain/localisation.js';
import { massInside } from '../explain/measures.js';
import type { Batch as FloatBatch } from '../images/cache.js';
import { tensorToRgb } from '../images/tensor-rgb.js';
import type { ResizeMode } from '../masks/geometry.js';
import type { Attribution } from '../model/attribution.js';
import type { ImageInput } from '../model/records.js';
import { readRegionsOnGrid } from '../synth/regions.js';
import type { Batch } from './backend.js';
import type { Variant } from './config.js';

/** What is measured needs from the cache (ts/images/cache.ts Cache has all of it). */
export interface AttributionCache {
  size: number;
  entries: { path?: unknown; labels?: number[] }[];
  preprocess?: { resize: ResizeMode };
  batch(indices: number[], variant: Variant): FloatBatch | Promise<FloatBatch>;
  recordBatch?(indices: number[], variants: readonly Variant[]): Promise<Batch>;
  /** Filled region bits per row (1 right lung, 2 left lung, 4 heart), [n,S,S]. */
  regionMasks(indices: number[]): Uint8Array;
}

/** Explains finding `finding` for n images (a classifier's logit or the zero-shot logit). */
export type ExplainBatch = (x: ImageInput, n: number, finding: number) => Promise<Attribution>;

export interface MeasureShare {
  mean: number;
  n: number;
}

export interface DiffInterval {
  diff: number;
  lo: number;
  hi: number;
  samples: number;
}

/** One model's attribution numbers over the sampled test images (results.json `attribution.models`). */
export interface ModelAttribution {
  model: string;
  images: number;
  /** Test variant → mean share of attribution mass in lungs ∪ heart (chance: `anatomyArea`). */
  anatomy: Record<Variant, MeasureShare>;
  anatomyArea: number;
  /** masked − original, paired over images. */
  anatomyDiff: DiffInterval;
  /** Synthetic data only: share inside the explained finding's drawn region (null without sidecars). */
  finding: Record<Variant, MeasureShare> | null;
  findingArea: number | null;
  findingDiff: DiffInterval | null;
  /** Synthetic data only, per finding and test variant: mass inside, pointing game, chance. */
  localisation?: Record<Variant, FindingLocalisation[]> | null;
}

export interface AttributionOptions {
  /** Test rows to explain (evenly spaced over `indices`; default 8). */
  images?: number;
  /** Image root of the cache's entries, for synthetic finding regions (<image>.regions.png). */
  imageRoot?: string;
  bootstrap?: { iterations?: number; seed?: number };
}

/** Paired bootstrap 95 % CI of the mean of `d` (NaN entries dropped). */
export function pairedMeanCI(d: number[], { iterations = 1000, seed = 12345 } = {}): DiffInterval {
  const v = d.filter(Number.isFinite);
  if (v.length === 0) return { diff: Number.NaN, lo: Number.NaN, hi: Number.NaN, samples: 0 };
  const rand = mulberry32(seed);
  const reps: number[] = [];
  const pick = new Float64Array(v.length);
  for (let b = 0; b < iterations; b++) {
    for (let i = 0; i < v.length; i++) pick[i] = v[Math.floor(rand() * v.length)]!;
    reps.push(nanMean(pick));
  }
  reps.sort((a, b) => a - b);
  return { diff: nanMean(v), lo: quantile(reps, 0.025), hi: quantile(reps, 0.975), samples: iterations };
}

/** `k` rows evenly spaced over `rows` (all when there are fewer). */
export function spread(rows: number[], k: number): number[] {
  if (rows.length <= k) return [...rows];
  return Array.from({ length: k }, (_, i) => rows[Math.floor(((i + 0.5) * rows.length) / k)]!);
}

/**
 * Measures one model on `testRows` of the cache (labels from the cache entries). Findings with no
 * positive image among the chosen rows are not explained.
 */
export async function measureModelAttribution(
  model: string,
  explain: ExplainBatch,
  cache: AttributionCache,
  testRows: number[],
  options: AttributionOptions = {},
): Promise<ModelAttribution> {
  const rows = spread(testRows, options.images ?? 8);
  const S = cache.size;
  const hw = S * S;
  const anatomy = cache.regionMasks(rows);
  const regions = await Promise.all(
    rows.map((r) => {
      const p = cache.entries[r]?.path;
      return options.imageRoot && typeof p === 'string'
        ? readRegionsOnGrid(join(options.imageRoot, p), S, cache.preprocess?.resize ?? 'shortest-crop')
        : Promise.resolve(null);
    }),
  );
  // per image, per variant: the shares of each explained finding
  const anat: Record<Variant, number[][]> = { original: rows.map(() => []), masked: rows.map(() => []) };
  const find: Record<Variant, number[][]> = { original: rows.map(() => []), masked: rows.map(() => []) };
  const findArea: number[] = [];
  const located: Record<Variant, LocalisationSample[]> = { original: [], masked: [] };
  for (let k = 0; k < NUM_LABELS; k++) {
    const which = rows.map((r, j) => ({ r, j })).filter(({ r }) => cache.entries[r]?.labels?.[k] === 1);
    if (which.length === 0) continue;
    const idx = which.map((w) => w.r);
    for (const v of ['original', 'masked'] as const) {
      const x = cache.recordBatch ? (await cache.recordBatch(idx, [v])).x : (await cache.batch(idx, v)).x;
      const a = await explain(x, idx.length, k);
      which.forEach(({ j }, i) => {
        const map = a.map.subarray(i * hw, (i + 1) * hw);
        anat[v][j]!.push(massInside(map, anatomy.subarray(j * hw, (j + 1) * hw)));
        const reg = regions[j];
        if (reg?.some((b) => b & (1 << k))) {
          find[v][j]!.push(massInside(map, reg, 1 << k));
          located[v].push({ finding: k, map, regions: reg });
          if (v === 'original') findArea.push(reg.reduce((s, b) => s + (b & (1 << k) ? 1 : 0), 0) / hw);
        }
      });
    }
  }
  const per = (m: Record<Variant, number[][]>, v: Variant) => m[v].map(nanMean);
  const share = (xs: number[]): MeasureShare => ({ mean: nanMean(xs), n: xs.filter(Number.isFinite).length });
  const diffs = (m: Record<Variant, number[][]>) => {
    const o = per(m, 'original');
    return per(m, 'masked').map((x, j) => x - o[j]!);
  };
  let area = 0;
  for (let p = 0; p < anatomy.length; p++) if (anatomy[p]) area++;
  const hasFinding = findArea.length > 0;
  return {
    model,
    images: rows.length,
    anatomy: { original: share(per(anat, 'original')), masked: share(per(anat, 'masked')) },
    anatomyArea: area / anatomy.length,
    anatomyDiff: pairedMeanCI(diffs(anat), options.bootstrap),
    finding: hasFinding
      ? { original: share(per(find, 'original')), masked: share(per(find, 'masked')) }
      : null,
    findingArea: hasFinding ? nanMean(findArea) : null,
    findingDiff: hasFinding ? pairedMeanCI(diffs(find), options.bootstrap) : null,
    localisation: hasFinding
      ? {
          original: summarizeLocalisation(located.original, S),
          masked: summarizeLocalisation(located.masked, S),
        }
      : null,
  };
}

/**
 * Up to `count` test images (the first rows measured) as figures: the image, the map on the original and
 * on the masked input, for the first finding the image is positive for. Returns paths relative to runDir.
 */
export async function exampleFigures(
  model: string,
  explain: ExplainBatch,
  cache: AttributionCache,
  testRows: number[],
  runDir: string,
  count = 2,
): Promise<string[]> {
  const out: string[] = [];
  const S = cache.size;
  const hw = S * S;
  for (const row of spread(testRows, count)) {
    const k = cache.entries[row]?.labels?.indexOf(1) ?? -1;
    if (k < 0) continue;
    const imgs = await Promise.all((['original', 'masked'] as const).map((v) => cache.batch([row], v)));
    const maps: Float32Array[] = [];
    for (const v of ['original', 'masked'] as const) {
      const x = cache.recordBatch ? (await cache.recordBatch([row], [v])).x : (await cache.batch([row], v)).x;
      maps.push((await explain(x, 1, k)).map.subarray(0, hw));
    }
    const orig = imgs[0]!.x as Float32Array;
    const masked = imgs[1]!.x as Float32Array;
    const png = await attributionFigure(
      [
        { rgb: tensorToRgb(orig, S), map: null, title: `${FINDINGS[k]} (test row ${row})` },
        { rgb: tensorToRgb(orig, S), map: maps[0]!, title: `${model}: original` },
        { rgb: tensorToRgb(masked, S), map: maps[1]!, title: `${model}: masked` },
      ],
      S,
      sharedScale(maps),
    );
    const name = `plots/attribution-${model}-${row}.png`;
    mkdirSync(join(runDir, 'plots'), { recursive: true });
    writeFileAtomic(join(runDir, name), png);
    out.push(name);
  }
  return out;
}
