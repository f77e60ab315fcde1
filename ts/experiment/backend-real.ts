/**
 * The real backend: ts/model/* (LibTorch addon) and ts/data (index, CheXmask join, image cache),
 * bound to the interfaces of backend.ts. Modules are loaded lazily so that commands which never touch
 * a model (e.g. `--help`, config errors) do not load the native addon.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, CacheLike, ClassifierOptions } from './backend.js';
import { ConfigError, type ExperimentConfig } from './config.js';
import { InterruptedError, type StopSignal } from './train.js';

// biome-ignore lint/suspicious/noExplicitAny: modules typed by their own packages
type Any = any;

const load = (spec: string): Promise<Any> => import(spec);

async function modelModules() {
  const [clip, classifier, tokenizer, native] = await Promise.all([
    load('../model/clip.js'),
    load('../model/classifier.js'),
    load('../model/tokenizer.js'),
    load('../native.js'),
  ]);
  return { clip, classifier, tokenizer, native };
}

export async function dataModules(): Promise<Any> {
  return load('../data/index.js');
}

export interface ModelMeta {
  preset?: string;
  embedDim?: number;
  imageSize?: number;
  contextLength?: number;
  mean?: [number, number, number];
  std?: [number, number, number];
  [k: string]: unknown;
}

export function readModelMeta(dir: string): ModelMeta {
  const p = join(dir, 'model.json');
  if (!existsSync(p))
    throw new ConfigError(`model folder ${dir} has no model.json (export one with scripts/setup.sh or tools/export_biomedclip.py)`);
  return JSON.parse(readFileSync(p, 'utf8')) as ModelMeta;
}

/** Preprocessing options matching an exported model (size, mean, std). */
export function preprocessFor(meta: ModelMeta): Record<string, unknown> {
  return {
    ...(meta.imageSize ? { size: meta.imageSize } : {}),
    ...(meta.mean ? { mean: meta.mean } : {}),
    ...(meta.std ? { std: meta.std } : {}),
  };
}

export async function realBackend(): Promise<Backend> {
  const m = await modelModules();
  const data = await dataModules();
  let diag: Any = null;
  const diagnostics = () => {
    diag ??= m.native.diagnostics();
    return diag;
  };
  return {
    name: 'libtorch',
    openCache: (dir: string) => data.openCache(dir) as CacheLike,

    loadClip: (dir: string, device: string) => m.clip.ClipModel.load(dir, { device }),
    loadTokenizer: (dir: string) => m.tokenizer.loadTokenizer(dir),
    createClassifier: (opts: ClassifierOptions) => m.classifier.Classifier.create(opts),
    resolveDevice: (requested: string) => {
      if (requested !== 'auto') return requested;
      return diagnostics()?.cuda?.available ? 'cuda' : 'cpu';
    },
    setThreads: (n: number) => m.native.setThreads(n),
    versions: () => {
      const d = diagnostics();
      return { torch: d?.torch?.version ?? null, cuda: d?.cuda ?? null, blas: d?.blas ?? null, threads: d?.threads ?? null };
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
  }: { signal?: StopSignal; log?: (s: string) => void; onProgress?: (done: number, total: number) => void } = {},
): Promise<Record<string, unknown>> {
  const data = await dataModules();
  const d = config.data;
  const meta = readModelMeta(config.model.dir);
  const preprocess = preprocessFor(meta);
  try {
    const cache = data.openCache(d.cache, { preprocess });
    return { cache: { dir: cache.dir, entries: cache.entries.length, skipped: cache.skipped ?? null } };
  } catch (e) {
    if (!d.root || !d.chexmask)
      throw new ConfigError(
        `cannot open the image cache ${d.cache} (${(e as Error).message}); set data.root and data.chexmask (or --data-root/--chexmask) to build it, or run \`cxrmask cache\``,
      );
  }
  if (signal?.stop) throw new InterruptedError('interrupted before building the cache');
  log(`[data] indexing ${d.root}`);
  const { entries, summary: indexSummary } = await data.buildIndex({
    root: d.root,
    views: d.views,
    uncertain: d.uncertain,
    requirePositive: d.requirePositive,
  });
  log(`[data] ${entries.length} images; building the image cache in ${d.cache} (CheXmask ${d.chexmask})`);
  const cacheSummary = await data.buildCache({
    entries,
    root: d.root,
    chexmask: d.chexmask,
    minDice: d.minDice,
    out: d.cache,
    preprocess,
    onProgress,
  });
  log(`[data] cached ${cacheSummary.cached} images, skipped ${JSON.stringify(cacheSummary.skipped?.counts ?? {})}`);
  return { index: indexSummary, cache: cacheSummary };
}
