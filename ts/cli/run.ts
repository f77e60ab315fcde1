/** `cxrmask run`: the whole Table-2 grid in a new run folder (or `--resume` an interrupted one). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { prepareData, realBackend } from '../experiment/backend-real.js';
import { type ExperimentConfig, loadConfig } from '../experiment/config.js';
import { runExperiment } from '../experiment/run.js';
import { table2Markdown } from '../report/tables.js';
import { configFromArgv } from './config-merge.js';
import { type ExperimentArgv, experimentOptions } from './options.js';
import { progressReporter } from './progress.js';
import { runCommand, UsageError } from './run-command.js';
import { installStop } from './signals.js';

export interface RunArgv extends ExperimentArgv {
  resume?: string;
  progress?: boolean;
}

/** Shared by run / zeroshot / train / demo: data → grid → print Table 2. */
export async function executeRun(
  config: ExperimentConfig,
  opts: {
    resume?: string | null;
    progress?: boolean;
    quiet?: boolean;
    extra?: Record<string, unknown>;
    onRunDir?: (dir: string) => void;
  } = {},
): Promise<string> {
  let runDir: string | null = opts.resume ?? null;
  const signal = installStop(() => (runDir ? `Resume later with: cxrmask run --resume ${runDir}` : ''));
  const backend = await realBackend();
  const extra = { ...(opts.extra ?? {}), ...(opts.resume ? {} : await prepareData(config, { signal })) };
  const progress = progressReporter(opts.progress === false || !process.stderr.isTTY);
  let result: Awaited<ReturnType<typeof runExperiment>>;
  try {
    result = await runExperiment({
      config,
      backend,
      resume: opts.resume ?? null,
      signal,
      extra,
      // the keyed folder the data step opened or built (config.data.cache may hold several)
      cacheDir: (extra['cache'] as { dir?: string } | undefined)?.dir ?? null,
      onEvent: progress.onEvent,
      onRunDir: (d) => {
        runDir = d;
        opts.onRunDir?.(d);
        process.stderr.write(`run folder: ${d}\n`);
      },
    });
  } finally {
    progress.stop();
  }
  if (!opts.quiet) {
    process.stdout.write(`\n${table2Markdown(result.results)}\n`);
    process.stdout.write(`Results: ${result.runDir}/results.json, report: ${result.runDir}/report.html\n`);
  }
  return result.runDir;
}

export const runCommandModule: CommandModule<object, RunArgv> = {
  command: 'run',
  describe:
    'Run the whole grid: zero-shot, linear probing and joint fine-tuning, each trained on original and masked images, tested on both, for every seed; writes results.json, table2.md, per_disease.md, plots and report.md/html in a new run folder',
  builder: (y: Argv<object>) =>
    experimentOptions(y)
      .option('resume', {
        type: 'string',
        describe:
          'resume an interrupted run folder: finished cells are kept, an unfinished one restarts from its last epoch',
      })
      .example('$0 run --config exp.json', 'run the grid from a config file')
      .example('$0 run --cache data/cache --seeds 0,1,2 --ft-epochs 5', 'flags override the file')
      .example(
        '$0 run --resume runs/20250101-120000-demo',
        'continue an interrupted run',
      ) as unknown as Argv<RunArgv>,
  handler: async (argv: ArgumentsCamelCase<RunArgv>) => {
    let dir: string | null = null;
    await runCommand(
      async () => {
        if (argv.resume) {
          dir = argv.resume;
          await executeRun(configFromResume(argv.resume), { resume: argv.resume, progress: argv.progress });
          return;
        }
        const config = configFromArgv(argv);
        await executeRun(config, { progress: argv.progress, onRunDir: (d) => (dir = d) });
      },
      { resume: () => dir },
    );
  },
};

function configFromResume(dir: string): ExperimentConfig {
  if (!existsSync(join(dir, 'config.json')))
    throw new UsageError(`--resume ${dir}: not a run folder (no config.json)`);
  return loadConfig(join(dir, 'config.json'));
}

export default runCommandModule;
