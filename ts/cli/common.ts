/** Shared CLI pieces: option groups, config from file + flags, grid progress bars, Ctrl-C, error exits. */
import cliProgress from 'cli-progress';
import type { Argv } from 'yargs';
import { DataError } from '../data/errors.js';
import { ConfigError, deepMerge, type ExperimentConfig, loadConfig } from '../experiment/config.js';
import type { GridEvent } from '../experiment/grid.js';
import { InterruptedError, type StopSignal } from '../experiment/train.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Options shared by every command that runs models. */
export function modelOptions<T>(y: Argv<T>) {
  return y
    .option('model', { type: 'string', describe: 'exported model folder (default models/tiny)' })
    .option('device', { choices: ['auto', 'cpu', 'cuda'] as const, describe: 'where to run (default auto)' })
    .option('threads', { type: 'number', describe: 'intra-op CPU threads' });
}

const THRESHOLD_RULES = ['youden', 'f1', 'accuracy', 'fixed'] as const;

/** How predictions become metrics (shared by the commands that evaluate: run, train, eval …). */
export function metricOptions<T>(y: Argv<T>) {
  return y
    .option('threshold-rule', {
      choices: THRESHOLD_RULES,
      describe: 'threshold rule of the accuracy metrics, per finding on validation (default accuracy)',
    })
    .option('operating-point-rule', {
      choices: THRESHOLD_RULES,
      describe: 'threshold rule of sensitivity/specificity/F1 (default youden)',
    })
    .option('threshold', { type: 'number', describe: 'the threshold for --threshold-rule fixed' })
    .option('bootstrap', { type: 'number', describe: 'bootstrap resamples for the masked − original CIs' })
    .option('primary', {
      choices: ['meanLabelAccuracy', 'macroAUROC', 'exactMatch', 'macroF1'] as const,
      describe: 'metric shown in Table 2',
    });
}

/** Options that map onto the experiment config (flags override the --config file). */
export function experimentOptions<T>(y: Argv<T>) {
  return metricOptions(modelOptions(y))
    .option('config', {
      type: 'string',
      describe: 'experiment config JSON (see docs/experiments.md); flags override it',
    })
    .option('cache', { type: 'string', describe: 'image cache folder (from `cxrmask cache`)' })
    .option('data-root', {
      type: 'string',
      describe: 'dataset root with mimic/ and chexmask/ (to build a missing cache)',
    })
    .option('chexmask', { type: 'string', describe: 'CheXmask CSV (to build a missing cache)' })
    .option('runs-dir', { type: 'string', describe: 'parent folder of run folders (default runs)' })
    .option('name', { type: 'string', describe: 'suffix of the run folder name' })
    .option('seeds', { type: 'string', describe: 'comma-separated seeds, e.g. 0,1,2' })
    .option('prompt', { type: 'string', describe: 'zero-shot prompt template with {finding}' })
    .option('negative-prompt', {
      type: 'string',
      describe: 'zero-shot negative prompt with {finding}; "none" for raw cosine',
    })
    .option('lp-epochs', { type: 'number', describe: 'linear-probe epochs' })
    .option('ft-epochs', { type: 'number', describe: 'fine-tuning epochs' })
    .option('ft-batch-size', { type: 'number', describe: 'fine-tuning batch size' })
    .option('lr-encoder', { type: 'number', describe: 'fine-tuning encoder learning rate' })
    .option('lr-head', { type: 'number', describe: 'fine-tuning head learning rate' })
    .option('max-train-images', { type: 'number', describe: 'cap on training images per cell' })
    .option('progress', {
      type: 'boolean',
      default: true,
      describe: 'progress bars (--no-progress: plain log lines)',
    });
}

export interface ExperimentArgv {
  config?: string;
  cache?: string;
  dataRoot?: string;
  chexmask?: string;
  runsDir?: string;
  name?: string;
  seeds?: string;
  prompt?: string;
  negativePrompt?: string;
  lpEpochs?: number;
  ftEpochs?: number;
  ftBatchSize?: number;
  lrEncoder?: number;
  lrHead?: number;
  maxTrainImages?: number;
  thresholdRule?: string;
  operatingPointRule?: string;
  threshold?: number;
  bootstrap?: number;
  primary?: string;
  model?: string;
  device?: string;
  threads?: number;
}

export function parseSeeds(s: string | undefined): number[] | undefined {
  if (s === undefined) return undefined;
  const parts = String(s)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const seeds = parts.map(Number);
  if (!parts.length || seeds.some((x) => !Number.isInteger(x) || x < 0))
    throw new ConfigError(`invalid --seeds "${s}": expected comma-separated non-negative integers`);
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
      data: drop({ cache: a.cache, root: a.dataRoot, chexmask: a.chexmask }),
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

/** First Ctrl-C: stop at the next step boundary (finished epochs are kept). Second: exit now. */
export function installStop(hint: () => string): StopSignal {
  const signal: StopSignal = { stop: false };
  const onSig = () => {
    if (signal.stop) {
      process.stderr.write('\nforced exit\n');
      process.exit(130);
    }
    signal.stop = true;
    process.stderr.write(`\nstopping after the current step (Ctrl-C again to exit now). ${hint()}\n`);
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return signal;
}

/** Progress bars for grid events (plain lines when stderr is not a TTY or --no-progress). */
export function progressReporter(plain = !process.stderr.isTTY) {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  let multi: cliProgress.MultiBar | null = null;
  let bar: cliProgress.SingleBar | null = null;
  let cellBar: cliProgress.SingleBar | null = null;
  let total = 0;
  let done = 0;
  const stopAll = () => {
    multi?.stop();
    multi = null;
    bar = null;
    cellBar = null;
  };
  const ensure = () => {
    if (plain || multi) return;
    multi = new cliProgress.MultiBar(
      {
        clearOnComplete: false,
        hideCursor: true,
        stream: process.stderr,
        format: ' {name} |{bar}| {value}/{total} {info}',
        barsize: 30,
      },
      cliProgress.Presets.shades_grey,
    );
    bar = multi.create(total || 1, done, { name: 'grid    ', info: '' });
  };
  const onEvent = (e: GridEvent) => {
    switch (e.kind) {
      case 'phase':
        if (e.name === 'plan') {
          total = e.detail ? e.detail.split(',').length : 0;
          if (plain) log(`[grid] ${total} cells: ${e.detail}`);
          else ensure();
        } else if (plain) log(`[grid] ${e.name}${e.detail ? ` ${e.detail}` : ''}`);
        else if (e.name === 'evaluate' || e.name === 'report') stopAll();
        break;
      case 'features':
        if (plain) {
          if (e.done === e.total) log(`[features] ${e.variant}: ${e.total} images`);
        } else {
          ensure();
          if (!cellBar) cellBar = multi!.create(e.total, 0, { name: `features`, info: e.variant });
          cellBar.setTotal(e.total);
          cellBar.update(e.done, { info: e.variant });
          if (e.done === e.total) {
            multi!.remove(cellBar);
            cellBar = null;
          }
        }
        break;
      case 'cell-start':
        if (plain) log(`[${e.id}] start${e.resumedFrom ? ` (resuming after epoch ${e.resumedFrom})` : ''}`);
        break;
      case 'cell-progress': {
        const p = e.progress;
        if (!plain) {
          ensure();
          const tot = p.epochs * p.steps;
          const val = (p.epoch - 1) * p.steps + p.step;
          if (!cellBar) cellBar = multi!.create(tot, val, { name: e.id.padEnd(8).slice(0, 16), info: '' });
          cellBar.setTotal(tot);
          cellBar.update(val, { info: `epoch ${p.epoch}/${p.epochs} loss ${p.loss?.toFixed(4) ?? ''}` });
        }
        break;
      }
      case 'cell-epoch':
        // plain logs: every epoch that took ≥ 1 s, else every 10th (linear probes run many fast epochs)
        if (plain && (e.record.seconds >= 1 || e.record.epoch % 10 === 0))
          log(
            `[${e.id}] epoch ${e.record.epoch}: train loss ${e.record.trainLoss.toFixed(4)}, val AUROC ${
              Number.isFinite(e.record.val.macroAUROC) ? e.record.val.macroAUROC.toFixed(3) : 'n/a'
            } (${e.record.seconds.toFixed(1)} s)`,
          );
        break;
      case 'cell-done':
        done++;
        if (plain)
          log(`[${e.id}] ${e.skipped ? 'already done (skipped)' : `done in ${e.seconds.toFixed(1)} s`}`);
        else {
          ensure();
          if (cellBar) {
            multi!.remove(cellBar);
            cellBar = null;
          }
          bar!.update(done, { info: e.id });
        }
        break;
    }
  };
  return { onEvent, stop: stopAll };
}

/**
 * The one runner of every command body: one `error:` line, then the exit code — 2 for what the user
 * can fix (bad input data, config, options, usage), 130 for Ctrl-C, 1 for anything else.
 */
export async function runCommand(
  body: () => Promise<void>,
  hints: { resume?: () => string | null } = {},
): Promise<void> {
  try {
    await body();
  } catch (e) {
    process.exitCode = reportError(e as Error, hints);
  }
}

function reportError(err: Error, hints: { resume?: () => string | null }): number {
  if (err instanceof InterruptedError) {
    const dir = hints.resume?.();
    process.stderr.write(
      `interrupted: ${err.message}.${dir ? ` Resume with: cxrmask run --resume ${dir}` : ''}\n`,
    );
    return 130;
  }
  // Option schemas parsed inside command bodies: raw zod errors, or the library's TypeError/RangeError
  // naming the option (ts/data/options.ts keeps the ZodError as `cause`).
  const zod = err.name === 'ZodError' || (err.cause as Error | undefined)?.name === 'ZodError';
  process.stderr.write(`error: ${zod ? `invalid option: ${err.message}` : err.message}\n`);
  if (process.env['CXRMASK_DEBUG']) process.stderr.write(`${err.stack}\n`);
  const userFixable =
    zod || err instanceof DataError || err instanceof ConfigError || err instanceof UsageError;
  return userFixable ? 2 : 1;
}

/** `a,b , c` → ['a','b','c'] (undefined stays undefined). */
export function parseList(s: string | undefined): string[] | undefined {
  if (s === undefined) return undefined;
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}
