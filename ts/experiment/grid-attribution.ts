/**
 * The paper's interpretability claim, measured: for a model (a grid cell) and each test variant, the
 * share of attribution mass inside lungs ∪ heart (the cache's filled regions, mask bits 3-5) and, on
 * synthetic data, inside the explained finding's drawn region; with a paired bootstrap 95 % CI of
 * masked − original over the test images. Each image is explained for each finding it is labelled
 * positive for; its number is the mean over those findings. Kept cheap: `images` test rows per model.
 */

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { readJson, writeFileAtomic, writeJsonAtomic } from '../common/io.js';
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
import { tensorToRgb } from '../images/tensor-rgb.js';
import type { ResizeMode } from '../masks/geometry.js';
import type { Attribution } from '../model/attribution.js';
import { Classifier } from '../model/classifier.js';
import { ClipModel } from '../model/clip.js';
import type { ImageInput } from '../model/records.js';
import { loadTokenizer } from '../model/tokenizer.js';

import { readRegionsOnGrid } from '../synth/regions.js';
import type { Batch, FloatBatch } from './backend.js';
import type { Variant } from './config.js';
import { fillPrompt } from './zeroshot.js';

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

/** One trained model's attribution measure: where its maps put their mass (lungs, heart, outside). */
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
 * Markdown table per model and finding (synthetic data): attribution mass inside the drawn finding
 * and pointing-game hit rate, original and masked input, against chance (the region's grid share).
 */
export function localisationTable(results: ModelAttribution[]): string {
  const pct = (x: number | undefined) =>
    x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(1)} %`;
  const lines: string[] = [];
  for (const r of results) {
    if (!r.localisation) continue;
    for (const o of r.localisation.original) {
      const m = r.localisation.masked.find((x) => x.finding === o.finding);
      lines.push(
        `| ${r.model} | ${o.finding} | ${o.images} | ${pct(o.massInside)} | ${pct(m?.massInside)} | ${pct(o.pointingRate)} | ${pct(m?.pointingRate)} | ${pct(o.chance)} |`,
      );
    }
  }
  if (lines.length === 0) return '';
  return [
    '| model | finding | images | mass inside: original | masked | pointing game: original | masked | chance |',
    '|---|---|---|---|---|---|---|---|',
    ...lines,
  ].join('\n');
}

/** Markdown table of several models' numbers (for the report). */
export function attributionTable(results: ModelAttribution[]): string {
  const pct = (x: number | null | undefined) =>
    x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(1)} %`;
  const ci = (d: DiffInterval | null) =>
    d && Number.isFinite(d.diff)
      ? `${(100 * d.diff).toFixed(1)} [${(100 * d.lo).toFixed(1)}, ${(100 * d.hi).toFixed(1)}]`
      : '–';
  const lines = [
    '| model | images | lungs ∪ heart: original | masked | masked − original (95 % CI, pp) | area | finding region: original | masked | masked − original | area |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results)
    lines.push(
      `| ${r.model} | ${r.images} | ${pct(r.anatomy.original.mean)} | ${pct(r.anatomy.masked.mean)} | ${ci(r.anatomyDiff)} | ${pct(r.anatomyArea)} | ${pct(r.finding?.original.mean)} | ${pct(r.finding?.masked.mean)} | ${ci(r.findingDiff)} | ${pct(r.findingArea)} |`,
    );
  return `${lines.join('\n')}\n\nShare of attribution mass (sum over channels of |IG| unless stated) inside the region; "area" is the region's share of the image, the share an even map would give. Findings explained: those the image is labelled positive for (${FINDINGS.length} possible).\n`;
}

/** results.json's `attribution` (also runDir/attribution.json). */
export interface GridAttribution {
  method: string;
  steps: number;
  imagesPerModel: number;
  map: string;
  models: ModelAttribution[];
  skipped: { model: string; reason: string }[];
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

/**
 * After the cells: the zero-shot model, every LP cell (its head over the image tower's embedding) and
 * every JFT cell (best.ckpt), each on the same test rows. Writes runDir/attribution.json.
 */
export async function gridAttribution(a: {
  config: {
    attribution: GridAttributionConfig;
    model: { dir: string };
    zeroshot: { enabled: boolean; prompt: string; negativePrompt: string | null };
    finetune: { bf16: boolean | 'auto' };
  };
  runDir: string;
  /** The run's cache; attribution needs its filled-region masks (ts/images/cache.ts Cache). */
  cache: Omit<AttributionCache, 'regionMasks' | 'size'> & {
    size?: number;
    regionMasks?: AttributionCache['regionMasks'];
  };
  testRows: number[];
  device: string;
  cells: { id: string; setup: string }[];
  imageRoot?: string;
}): Promise<GridAttribution | null> {
  const c = a.config.attribution;
  if (!c.enabled) return null;
  const cache = a.cache;
  if (typeof cache.regionMasks !== 'function' || typeof cache.size !== 'number')
    throw new ConfigError('attribution.enabled needs an image cache with region masks (cache format 3)');
  const withMasks = cache as AttributionCache;
  const device = a.device as 'cpu' | 'cuda';
  const bf16 =
    a.config.finetune.bf16 === true || (a.config.finetune.bf16 === 'auto' && device.startsWith('cuda'));
  const opts = { method: c.method, steps: c.steps, samples: c.samples, bf16 };
  const measureOpts = { images: c.images, ...(a.imageRoot ? { imageRoot: a.imageRoot } : {}) };
  const models: ModelAttribution[] = [];
  const skipped: { model: string; reason: string }[] = [];
  const examples: string[] = [];
  // One image tower for the zero-shot model and the LP heads (a LP logit is embedding·w + b).
  const clip = await ClipModel.load(a.config.model.dir, { device });
  try {
    if (a.config.zeroshot.enabled) {
      const tok = loadTokenizer(a.config.model.dir);
      const texts: Float32Array[] = [];
      for (const f of FINDINGS) {
        const prompts = [fillPrompt(a.config.zeroshot.prompt, f)];
        if (a.config.zeroshot.negativePrompt) prompts.push(fillPrompt(a.config.zeroshot.negativePrompt, f));
        texts.push(await clip.encodeText(tok.encode(prompts), prompts.length));
      }
      const explain: ExplainBatch = (x, n, k) => clip.attribute(x, n, texts[k]!, opts);
      models.push(await measureModelAttribution('zeroshot', explain, withMasks, a.testRows, measureOpts));
      examples.push(...(await exampleFigures('zeroshot', explain, withMasks, a.testRows, a.runDir)));
    }
    for (const cell of a.cells) {
      const ckpt = join(a.runDir, 'cells', cell.id, 'best.ckpt');
      if (cell.setup === 'linear-probe') {
        const d = clip.embedDim;
        const head = await linearHead(ckpt, d, device);
        const explain: ExplainBatch = (x, n, k) =>
          clip.attributeLinear(x, n, head.weight.subarray(k * d, (k + 1) * d), head.bias[k]!, opts);
        models.push(await measureModelAttribution(cell.id, explain, withMasks, a.testRows, measureOpts));
        continue;
      }
      const clf = await Classifier.create({ modelDir: a.config.model.dir, device, bf16 });
      try {
        await clf.load(ckpt);
        const explain: ExplainBatch = (x, n, k) => clf.attribute(x, n, k, opts);
        models.push(await measureModelAttribution(cell.id, explain, withMasks, a.testRows, measureOpts));
        // Figures for the first fine-tuned cell (the model the paper's claim is about).
        if (!examples.some((e) => e.includes('-jft-')))
          examples.push(...(await exampleFigures(cell.id, explain, withMasks, a.testRows, a.runDir)));
      } finally {
        await clf.dispose();
      }
    }
  } finally {
    await clip.dispose();
  }
  const out: GridAttribution = {
    method: c.method,
    steps: c.steps,
    imagesPerModel: c.images,
    map: 'per pixel: sum over channels of |attribution|; explained: the logit of each finding the image is positive for',
    models,
    skipped,
    examples,
  };
  writeJsonAtomic(join(a.runDir, 'attribution.json'), out);
  return out;
}

/**
 * A linear-probe cell's head, read back through predict(): p = sigmoid(F·Wᵀ + b) at F = 0 gives b, at
 * F = the unit vectors W's columns (float32 probabilities: logits good to ~1e-4 while |logit| < 8).
 */
export async function linearHead(
  ckpt: string,
  dim: number,
  device: string,
): Promise<{ weight: Float32Array; bias: Float64Array }> {
  const clf = await Classifier.create({ inputDim: dim, numLabels: NUM_LABELS, device: device as 'cpu' });
  try {
    await clf.load(ckpt);
    const f = new Float32Array((dim + 1) * dim);
    for (let j = 0; j < dim; j++) f[(j + 1) * dim + j] = 1;
    const p = await clf.predict(f, dim + 1);
    const logit = (v: number) => Math.log(v / (1 - v));
    const bias = Float64Array.from({ length: NUM_LABELS }, (_, k) => logit(p[k]!));
    const weight = new Float32Array(NUM_LABELS * dim);
    for (let k = 0; k < NUM_LABELS; k++)
      for (let j = 0; j < dim; j++) weight[k * dim + j] = logit(p[(j + 1) * NUM_LABELS + k]!) - bias[k]!;
    return { weight, bias };
  } finally {
    await clf.dispose();
  }
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

/** runDir/attribution.json when the run measured attribution (re-evaluation keeps it). */
export function readGridAttribution(runDir: string): GridAttribution | null {
  return readJson<GridAttribution>(join(runDir, 'attribution.json'));
}
