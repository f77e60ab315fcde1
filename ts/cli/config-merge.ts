/** The experiment config of a command: the --config file, overridden by flags. */
import { ConfigError } from '../common/errors.js';
import { deepMerge, type ExperimentConfig, loadConfig } from '../experiment/config.js';
import type { ExperimentArgv } from './options.js';

export function parseSeeds(s: string | undefined): number[] | undefined {
  if (s === undefined) return undefined;
  const parts = String(s)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const seeds = parts.map(Number);
  if (!parts.length || seeds.some((x) => !Number.isInteger(x) || x < 0))
    throw new ConfigError(`invalid --seeds "${s}": expected comma-separated non-negative integers`);
  const twice = seeds.find((x, i) => seeds.indexOf(x) !== i);
  if (twice !== undefined)
    throw new ConfigError(
      `invalid --seeds "${s}": seed ${twice} is given twice (each seed is one run of every cell)`,
    );
  return seeds;
}

/** Flags → a partial config object (undefined entries are dropped by the merge). */
export function overridesFromArgv(a: ExperimentArgv): Record<string, unknown> {
  const drop = (o: Record<string, unknown>) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
    return Object.keys(out).length ? out : undefined;
  };
  return (
    drop({
      name: a.name,
      runsDir: a.runsDir,
      seeds: parseSeeds(a.seeds),
      data: drop({ dataset: a.dataset, cache: a.cache, root: a.dataRoot, chexmask: a.chexmask }),
      model: drop({ dir: a.model, device: a.device, threads: a.threads }),
      zeroshot: drop({
        prompt: a.prompt,
        negativePrompt: a.negativePrompt === 'none' ? null : a.negativePrompt,
      }),
      linearProbe: drop({ epochs: a.lpEpochs, maxTrainImages: a.maxTrainImages }),
      finetune: drop({
        epochs: a.ftEpochs,
        batchSize: a.ftBatchSize,
        lrEncoder: a.lrEncoder,
        lrHead: a.lrHead,
        maxTrainImages: a.maxTrainImages,
      }),
      metrics: drop({
        thresholdRule: a.thresholdRule,
        operatingPointRule: a.operatingPointRule,
        fixedThreshold: a.threshold,
        bootstrap: a.bootstrap,
        primary: a.primary,
      }),
    }) ?? {}
  );
}

/** The experiment config of a command: --config file, then flags, then `extra` (command-specific). */
export function configFromArgv(a: ExperimentArgv, extra: Record<string, unknown> = {}): ExperimentConfig {
  return loadConfig(a.config, deepMerge(overridesFromArgv(a), extra));
}
