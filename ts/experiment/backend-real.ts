/**
 * The real backend: ts/model/* (LibTorch addon) and ts/data (index, CheXmask join, image cache),
 * bound to the interfaces of backend.ts. The imports are static; the native addon itself is loaded on
 * first use (ts/native.ts loadNative), so commands that never touch a model (e.g. `--help`, config
 * errors) do not load it.
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, InterruptedError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { adapterFor, buildDatasetIndex } from '../data/datasets/index.js';
import type { Split } from '../data/mimic.js';
import { openCache } from '../images/cache.js';
import { buildCache } from '../images/cache-build.js';
import { Classifier } from '../model/classifier.js';
import { ClipModel } from '../model/clip.js';
import { type ModelMeta, readModelMeta as readMeta } from '../model/meta.js';
import { hostBytes } from '../model/records.js';
import { Segmenter } from '../model/segmenter.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { type Diagnostics, diagnostics, setThreads } from '../native.js';
import type { Backend, CacheLike, ClassifierOptions } from './backend.js';
import type { ExperimentConfig } from './config.js';
import type { TestDatasetSpec } from './cross-dataset.js';

export type { ModelMeta };

/**
 * model.json of an exported model folder (ts/model/meta.ts reads it); a missing file is the user's
 * setting, so it is a ConfigError here rather than the model layer's plain Error.
 */
export function readModelMeta(dir: string): ModelMeta {
  if (!existsSync(join(dir, 'model.json')))
    throw new ConfigError(
      `model folder ${dir} has no model.json (export one with scripts/setup.sh or tools/export_biomedclip.py)`,
    );
  return readMeta(dir);
}

/** Preprocessing options matching an exported model (size, mean, std). */
export function preprocessFor(
  meta: Partial<Pick<ModelMeta, 'imageSize' | 'mean' | 'std'>>,
): Record<string, unknown> {
  return {
    ...(meta.imageSize ? { size: meta.imageSize } : {}),
    ...(meta.mean ? { mean: meta.mean } : {}),
    ...(meta.std ? { std: meta.std } : {}),
  };
}

/**
 * The Backend over the LibTorch addon, the image cache and the tokenizer: what the CLI gives
 * `runExperiment`.
 */
export async function realBackend(): Promise<Backend> {
  let diag: Diagnostics | null = null;
  const diagnose = () => {
    diag ??= diagnostics();
    return diag;
  };
  return {
    name: 'libtorch',
    openCache: (dir: string) => {
      const cache = openCache(dir);
      // Records are read straight into addon-owned memory: batches reach the model without a copy.
      cache.allocate = hostBytes;
      return cache as unknown as CacheLike;
    },
    loadClip: (dir: string, device: string) => ClipModel.load(dir, { device: device as 'cpu' }),
    loadSegmenter: async (dir, weights, o) => {
      const seg = await Segmenter.load(dir, { device: o.device as 'cpu', threshold: o.threshold });
      await seg.load(weights).catch(async (e) => {
        await seg.dispose();
        throw e;
      });
      return seg;
    },
    loadTokenizer: (dir: string) => loadTokenizer(dir),
    createClassifier: (opts: ClassifierOptions) =>
      Classifier.create({ ...opts, device: opts.device as 'cpu' | undefined }),
    resolveDevice: (requested: string) => {
      if (requested !== 'auto') return requested;
      return diagnose().cuda?.available ? 'cuda' : 'cpu';
    },
    setThreads: (n: number) => setThreads(n),
    versions: () => {
      const d = diagnose();
      return {
        torch: d.torch?.version ?? null,
        cuda: d.cuda ?? null,
        blas: d.blas ?? null,
        threads: d.threads ?? null,
      };
    },
  };
}

/**
 * Make sure `config.data.cache` exists: open it, or build it (index → CheXmask join → decode-once
 * cache) from `data.root` + `data.chexmask`. Returns the summaries recorded in results.json.
 */
export async function prepareData(
  config: ExperimentConfig,
  {
    signal,
    log = (s: string) => process.stderr.write(`${s}\n`),
    onProgress,
    splits,
  }: {
    signal?: StopSignal;
    log?: (s: string) => void;
    onProgress?: (done: number, total: number) => void;
    /** Cache only these splits' images (a test dataset needs its test split alone); default all. */
    splits?: readonly Split[];
  } = {},
): Promise<Record<string, unknown>> {
  const d = config.data;
  const meta = readModelMeta(config.model.dir);
  const preprocess = preprocessFor(meta);
  // the index's label policy and the CheXmask filter are part of the cache key (settingsKey)
  const labelPolicy = { uncertain: d.uncertain, blank: 'zeros' as const };
  try {
    const cache = openCache(d.cache, { preprocess, data: { minDice: d.minDice, labelPolicy } });
    return { cache: { dir: cache.dir, entries: cache.entries.length, skipped: cache.skipped ?? null } };
  } catch (e) {
    // A keyed cache folder built with another label policy / minDice / size: never train on it.
    if ((e as { reason?: string }).reason === 'cache-mismatch')
      throw new ConfigError(
        `the image cache does not match this config: ${(e as Error).message}. Set data.uncertain/data.minDice to what it was built with, or point data.cache at its parent folder to build a matching one next to it`,
      );
    if (!d.root || !d.chexmask)
      throw new ConfigError(
        `cannot open the image cache ${d.cache} (${(e as Error).message}); set data.root and data.chexmask (or --data-root/--chexmask) to build it, or run \`cxrmask cache\``,
      );
    // a damaged cache is rebuilt (intact shards are reused after their checksum is verified); say so
    if ((e as { reason?: string }).reason === 'bad-cache') log(`[data] ${(e as Error).message}`);
  }
  if (signal?.stop) throw new InterruptedError('interrupted before building the cache');
  log(`[data] indexing ${d.root}`);
  const { entries: indexed, summary: indexSummary } = await buildDatasetIndex({
    dataset: d.dataset,
    root: d.root,
    views: d.views,
    uncertain: labelPolicy.uncertain,
    blank: labelPolicy.blank,
    requirePositive: d.requirePositive,
  });
  const entries = splits ? indexed.filter((e) => splits.includes(e.split)) : indexed;
  log(
    `[data] ${entries.length} images${splits ? ` (${splits.join(', ')})` : ''}; building the image cache in ${d.cache} (CheXmask ${d.chexmask})`,
  );
  const cacheSummary = await buildCache({
    entries,
    root: d.root,
    chexmask: d.chexmask,
    chexmaskIdColumn: adapterFor(d.dataset).chexmaskIdColumn,
    minDice: d.minDice,
    labelPolicy,
    out: d.cache,
    preprocess,
    onProgress,
  });
  log(
    `[data] cached ${cacheSummary.cached} images, skipped ${JSON.stringify(cacheSummary.skipped?.counts ?? {})}`,
  );
  return { index: indexSummary, cache: cacheSummary };
}

/**
 * Builds (or opens) the image cache of a test dataset's test split (config.test.datasets), with the
 * run's label policy, views and CheXmask filter. For RunOptions.prepareTestData.
 */
export async function prepareTestData(
  config: ExperimentConfig,
  t: TestDatasetSpec,
  opts: { signal?: StopSignal; log?: (s: string) => void } = {},
): Promise<{ cacheDir: string; summary: Record<string, unknown> }> {
  const c: ExperimentConfig = {
    ...config,
    data: { ...config.data, dataset: t.dataset, root: t.root, chexmask: t.chexmask, cache: t.cache },
  };
  const summary = await prepareData(c, { ...opts, splits: ['test'] });
  const dir = (summary['cache'] as { dir?: string } | undefined)?.dir ?? t.cache;
  return { cacheDir: dir, summary };
}
