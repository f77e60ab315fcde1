/**
 * The real backend: the model backend of ts/model/backend-real.ts plus ts/data and ts/images (index,
 * CheXmask join, image cache), and the steps that build a run's cache.
 */

import { dirname } from 'node:path';
import { ConfigError, type DataError, InterruptedError } from '../common/errors.js';
import type { StopSignal } from '../common/interrupt.js';
import { adapterFor, buildDatasetIndex } from '../data/datasets/registry.js';
import type { IndexEntry, IndexRowFilters, Split } from '../data/mimic.js';
import { type Cache, intactEntries, openCache } from '../images/cache.js';
import { buildCache, rebuildNotes } from '../images/cache-build.js';
import type { ResolvedPreprocess } from '../images/preprocess.js';
import { preprocessFor, realModelBackend } from '../model/backend-real.js';
import { readModelMeta } from '../model/meta.js';
import { hostBytes } from '../model/records.js';
import type { Backend, CacheLike } from './backend.js';
import { type ExperimentConfig, parseConfig } from './config.js';
import type { TestDatasetSpec } from './cross-dataset.js';

/** The real model backend (ts/model/backend-real.ts) with the image cache of ts/images. */
export async function realBackend(): Promise<Backend> {
  return {
    ...realModelBackend(),
    openCache: (dir: string) => {
      const cache = openCache(dir);
      // Records are read straight into addon-owned memory: batches reach the model without a copy.
      cache.allocate = hostBytes;
      return cache as unknown as CacheLike;
    },
  };
}

/** The config's index row filters, as a cache records them (cache.json build.rows). */
function rowFilters(d: ExperimentConfig['data']): IndexRowFilters {
  const rows: IndexRowFilters = { dataset: d.dataset, views: d.views, requirePositive: d.requirePositive };
  if (d.dataset === 'vindr') rows.readerRule = d.readerRule;
  return rows;
}

const viewSet = (v: readonly string[]) => JSON.stringify([...new Set(v)].sort());

/**
 * The row filters are not part of the cache key, so an existing cache may have been indexed with
 * others than the config's (e.g. without requirePositive): a run would train on other images than
 * its results.json says. Refused, naming each field. A cache that does not record them (built
 * before caches did, or from an index without summary.json) is taken only for the default filters;
 * its dataset is known from its entries.
 * @throws {ConfigError} naming the cache folder and each differing field.
 */
function checkRowFilters(
  cache: { dir: string; build: Cache['build']; entries: readonly IndexEntry[]; close?: () => void },
  d: ExperimentConfig['data'],
): void {
  const want = rowFilters(d);
  const had = cache.build?.rows;
  const out: string[] = [];
  const datasets = had ? [had.dataset] : [...new Set(cache.entries.map((e) => e.dataset ?? 'mimic'))];
  if (datasets.some((x) => x !== want.dataset))
    out.push(
      `data.dataset ${datasets.map((x) => `"${x}"`).join(', ')} (cache) vs "${want.dataset}" (config)`,
    );
  const defaults = parseConfig({ data: { cache: '-' } }).data;
  const views = had?.views ?? defaults.views;
  if (viewSet(views) !== viewSet(want.views))
    out.push(
      `data.views ${had ? JSON.stringify(views) : 'not recorded'} (cache) vs ${JSON.stringify(want.views)} (config)`,
    );
  const positive = had?.requirePositive ?? defaults.requirePositive;
  if (positive !== want.requirePositive)
    out.push(
      `data.requirePositive ${had ? positive : 'not recorded'} (cache) vs ${want.requirePositive} (config)`,
    );
  // VinDr labels depend on how the readers were combined (the images do not)
  if (want.dataset === 'vindr') {
    const rule = had?.readerRule ?? defaults.readerRule;
    if (rule !== want.readerRule)
      out.push(
        `data.readerRule "${rule}"${had ? '' : ' (not recorded: the default)'} (cache) vs "${want.readerRule}" (config)`,
      );
  }
  if (!out.length) return;
  cache.close?.();
  throw new ConfigError(
    `the image cache ${cache.dir} was not indexed with this config's row filters: ${out.join('; ')}. ` +
      (had
        ? 'It holds other images than the config asks for. '
        : 'It does not record its index filters (built before caches recorded them, or from an index without summary.json), so only the defaults can be trusted. ') +
      'Set these fields to what the cache was built with, or give data.cache a new folder (with data.root and data.chexmask) to build a cache with them',
  );
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
    preprocess: asked,
  }: {
    signal?: StopSignal;
    log?: (s: string) => void;
    onProgress?: (done: number, total: number) => void;
    /** Cache only these splits' images (a test dataset needs its test split alone); default all. */
    splits?: readonly Split[];
    /** Build with this preprocessing instead of the model's default (a test dataset of a run). */
    preprocess?: ResolvedPreprocess;
  } = {},
): Promise<Record<string, unknown>> {
  const d = config.data;
  const preprocess = asked ?? preprocessFor(readModelMeta(config.model.dir));
  // the index's label policy and the CheXmask filter are part of the cache key (settingsKey)
  const labelPolicy = { uncertain: d.uncertain, blank: d.blank };
  let repair: ReturnType<typeof intactEntries> = null;
  try {
    const cache = openCache(d.cache, { preprocess, data: { minDice: d.minDice, labelPolicy } });
    checkRowFilters(cache, d);
    return { cache: { dir: cache.dir, entries: cache.entries.length, skipped: cache.skipped ?? null } };
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    // A keyed cache folder built with another label policy / minDice / size: never train on it.
    if ((e as { reason?: string }).reason === 'cache-mismatch')
      throw new ConfigError(
        `the image cache does not match this config: ${(e as Error).message}. Set data.uncertain/data.blank/data.minDice to what it was built with, or point data.cache at its parent folder to build a matching one next to it`,
      );
    // The folder holds caches, each built with other settings (often the index's default label policy
    // uncertain=zeros against the config's ignore): say how, not "run `cxrmask cache`" once more.
    if ((e as { reason?: string }).reason === 'no-matching-cache' && (!d.root || !d.chexmask))
      throw new ConfigError(
        `${(e as Error).message}. Set data.uncertain/data.blank/data.minDice to what one was built with (\`cxrmask index --uncertain/--blank\` and \`cxrmask cache --min-dice\` picked them), or set data.root and data.chexmask to build a matching one next to them`,
      );
    if (!d.root || !d.chexmask)
      throw new ConfigError(
        `cannot open the image cache ${d.cache} (${(e as Error).message}); set data.root and data.chexmask (or --data-root/--chexmask) to build it, or run \`cxrmask cache\``,
      );
    // a damaged cache is rebuilt (intact shards are reused after their checksum is verified); say so
    if ((e as { reason?: string }).reason === 'bad-cache') {
      log(`[data] ${(e as Error).message}`);
      repair = repairSource(e as DataError, d);
    }
  }
  if (signal?.stop) throw new InterruptedError('interrupted before building the cache');
  // data.root is set here: prepareData stops above without it
  const { entries, indexSummary } = await entriesToCache({ ...d, root: d.root! }, repair, splits, log);
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
    // a repair keeps what the cache recorded of the index it came from
    rows: repair ? (repair.build.rows ?? null) : rowFilters(d),
    out: d.cache,
    preprocess,
    onProgress,
    signal,
  });
  log(
    `[data] cached ${cacheSummary.cached} images, skipped ${JSON.stringify(cacheSummary.skipped?.counts ?? {})}`,
  );
  for (const line of rebuildNotes(cacheSummary)) log(`[data] ${line}`);
  return { ...(repair ? {} : { index: indexSummary }), cache: cacheSummary };
}

/**
 * The images a cache build takes: a damaged cache's own (repair), else data.root indexed with the
 * config's settings, restricted to `splits`.
 */
async function entriesToCache(
  d: ExperimentConfig['data'] & { root: string },
  repair: ReturnType<typeof intactEntries>,
  splits: readonly Split[] | undefined,
  log: (s: string) => void,
): Promise<{ entries: IndexEntry[]; indexSummary: unknown }> {
  if (repair) {
    log(
      `[data] repairing it from its own entries.jsonl: the same ${repair.entries.length} images, labels and splits`,
    );
    return { entries: repair.entries, indexSummary: null };
  }
  log(`[data] indexing ${d.root}`);
  const indexed = await buildDatasetIndex({
    dataset: d.dataset,
    root: d.root,
    views: d.views,
    uncertain: d.uncertain,
    blank: d.blank,
    requirePositive: d.requirePositive,
    readerRule: d.readerRule,
  });
  const entries = splits ? indexed.entries.filter((e) => splits.includes(e.split)) : indexed.entries;
  return { entries, indexSummary: indexed.summary };
}

/**
 * What a damaged cache can be repaired from: its own entries, when they are intact and it was built
 * with the config's label policy, Dice filter and row filters (checkRowFilters). Null sends the build
 * back to indexing data.root.
 * @throws {ConfigError} the cache was built with other settings than the config's.
 */
function repairSource(e: DataError, d: ExperimentConfig['data']): ReturnType<typeof intactEntries> {
  const file = e.where.file;
  const dir = file ? dirname(file) : null;
  const found = dir ? intactEntries(dir) : null;
  if (!dir || !found) return null;
  // a keyed folder given directly may hold another label policy or Dice filter than the config's:
  // repaired as the config says, its labels would be recorded under settings they were not made with
  const want = { uncertain: d.uncertain, blank: d.blank };
  const had = found.build.labelPolicy;
  const differ = [
    ...(had && (had.uncertain !== want.uncertain || had.blank !== want.blank)
      ? [`labels ${JSON.stringify(had)} (cache) vs ${JSON.stringify(want)} (config)`]
      : []),
    ...(found.build.minDice !== d.minDice
      ? [`minDice ${found.build.minDice} (cache) vs ${d.minDice} (config)`]
      : []),
  ];
  if (differ.length)
    throw new ConfigError(
      `the damaged cache ${dir} was built with other settings than the config's (${differ.join('; ')}): set data.* to what it was built with to repair it, or give data.cache a new folder`,
    );
  checkRowFilters({ dir, build: found.build, entries: found.entries }, d);
  return found;
}

/**
 * Builds (or opens) the image cache of a test dataset's test split (config.test.datasets), with the
 * run's label policy, views and CheXmask filter, and `opts.preprocess` (the run's own cache's) when
 * given. For RunOptions.prepareTestData.
 */
export async function prepareTestData(
  config: ExperimentConfig,
  t: TestDatasetSpec,
  opts: { signal?: StopSignal; log?: (s: string) => void; preprocess?: ResolvedPreprocess } = {},
): Promise<{ cacheDir: string; summary: Record<string, unknown> }> {
  const c: ExperimentConfig = {
    ...config,
    data: { ...config.data, dataset: t.dataset, root: t.root, chexmask: t.chexmask, cache: t.cache },
  };
  const summary = await prepareData(c, { ...opts, splits: ['test'] });
  const dir = (summary['cache'] as { dir?: string } | undefined)?.dir ?? t.cache;
  return { cacheDir: dir, summary };
}
