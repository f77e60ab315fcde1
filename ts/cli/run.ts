/** `cxrmask run`: the whole Table-2 grid in a new run folder (or `--resume` an interrupted one). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { UsageError } from '../common/errors.js';
import { checkDevices, parseDevices } from '../distributed/devices.js';
import { launchIfAsked, MAX_LOCAL_RANKS, NPROC_HELP } from '../distributed/launch.js';
import { runExperiment } from '../distributed/run-experiment.js';
import { joinGroupFromEnv } from '../distributed/run-group.js';
import { prepareData, prepareTestData, realBackend } from '../experiment/backend-real.js';
import { type ExperimentConfig, loadConfig } from '../experiment/config.js';
import { readDistEnv } from '../model/dist-env.js';
import { ROOT_WORK_TIMEOUT_MS } from '../model/process-group.js';
import { diagnostics } from '../native.js';
import { table2Markdown } from '../report/tables.js';
import { COMMAND_TEXT } from './commands.js';
import { configFromArgv } from './config-merge.js';
import { checkCount, type ExperimentArgv, experimentFlagsGiven, experimentOptions } from './options.js';
import { progressReporter } from './progress.js';
import { runCommand } from './run-command.js';
import { installStop } from './signals.js';

export interface RunArgv extends ExperimentArgv {
  resume?: string;
  progress?: boolean;
  nproc?: number;
  devices?: string;
}

/**
 * `--devices` (cells side by side, one process per device) refused with `--nproc`, torchrun or Slurm,
 * where every rank would train every cell: checked before any rank starts or joins its group.
 * @throws {UsageError}
 */
export function checkDevicesAlone(devices: unknown, nproc = 1): void {
  // inside a rank --nproc is gone: the launcher's variables say it is one
  if (devices !== undefined && (nproc > 1 || readDistEnv()))
    throw new UsageError(
      '--devices does not combine with --nproc, torchrun or Slurm: cells side by side on several devices, or each cell on all ranks',
    );
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
    /** Independent cells side by side, one process per device (`--devices`). */
    devices?: string[];
  } = {},
): Promise<string> {
  let runDir: string | null = opts.resume ?? null;
  checkDevicesAlone(opts.devices);
  const backend = await realBackend();
  // Under torchrun / Slurm / --nproc: join the group; rank 0 prepares the data first, alone.
  const dist = await joinGroupFromEnv(backend, config);
  // ranks other than 0 print nothing: rank 0 reports for the group
  const otherRank = dist !== null && dist.group.rank !== 0;
  const quiet = opts.quiet || otherRank;
  const progress = progressReporter(opts.progress === false || !process.stderr.isTTY);
  let result: Awaited<ReturnType<typeof runExperiment>>;
  const signal = installStop(() => (runDir ? `Resume later with: cxrmask run --resume ${runDir}` : ''), {
    quiet: otherRank,
  });
  // the group is closed on every path (a rank 0 that fails preparing the data frees the others at once)
  try {
    if (dist && dist.group.rank !== 0) await dist.group.barrier(ROOT_WORK_TIMEOUT_MS);
    const extra = { ...(opts.extra ?? {}), ...(opts.resume ? {} : await prepareData(config, { signal })) };
    if (dist && dist.group.rank === 0) await dist.group.barrier();
    result = await runExperiment({
      config,
      backend,
      resume: opts.resume ?? null,
      signal,
      extra,
      // the keyed folder the data step opened or built (config.data.cache may hold several)
      cacheDir: (extra['cache'] as { dir?: string } | undefined)?.dir ?? null,
      ...(otherRank ? {} : { onEvent: progress.onEvent }),
      onRunDir: (d) => {
        runDir = d;
        opts.onRunDir?.(d);
        if (!quiet) process.stderr.write(`run folder: ${d}\n`);
      },
      ...(dist ? { dist: dist.group, device: dist.device } : {}),
      ...(opts.devices ? { devices: opts.devices } : {}),
      prepareTestData: (t, preprocess) =>
        prepareTestData(config, t, { signal, ...(preprocess ? { preprocess } : {}) }),
    });
  } finally {
    progress.stop();
    signal.release();
    await dist?.group.close();
  }
  if (!quiet) {
    process.stdout.write(`\n${table2Markdown(result.results)}\n`);
    for (const name of Object.keys(result.results.testDatasets ?? {}))
      process.stdout.write(`Table 2 tested on ${name}: ${result.runDir}/table2-${name}.md\n`);
    process.stdout.write(`Results: ${result.runDir}/results.json, report: ${result.runDir}/report.html\n`);
  }
  return result.runDir;
}

export const runCommandModule: CommandModule<object, RunArgv> = {
  ...COMMAND_TEXT.run,
  builder: (y: Argv<object>) =>
    experimentOptions(y)
      .option('nproc', {
        type: 'number',
        describe: NPROC_HELP,
      })
      .option('devices', {
        type: 'string',
        describe:
          'run independent cells side by side, one process per listed device, e.g. cuda:0,cuda:1 or cpu,cpu (same results as one after the other)',
      })
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
    // checked before any rank is started (a typo would start that many processes)
    await runCommand(async () => {
      checkCount('nproc', argv.nproc, 1, MAX_LOCAL_RANKS);
      if (argv.resume) checkResumeFlags(argv.resume, argv);
      checkDevicesAlone(argv.devices, argv.nproc);
    });
    if (process.exitCode) return;
    if (await launchIfAsked(argv.nproc)) return;
    let dir: string | null = null;
    await runCommand(
      async () => {
        const devices = argv.devices === undefined ? {} : { devices: parseDevices(argv.devices) };
        // before the data step: a device this machine lacks would fail only in a cell worker
        if (devices.devices) checkDevices(devices.devices, diagnostics().cuda?.deviceCount ?? 0);
        if (argv.resume) {
          dir = argv.resume;
          await executeRun(configFromResume(argv.resume), {
            resume: argv.resume,
            progress: argv.progress,
            ...devices,
          });
          return;
        }
        const config = configFromArgv(argv);
        await executeRun(config, { progress: argv.progress, onRunDir: (d) => (dir = d), ...devices });
      },
      { resume: () => dir },
    );
  },
};

/**
 * A resume goes on with the settings in DIR/config.json (what its cells were trained with); a flag
 * that would change one was silently dropped. Only how this process runs may be given with it:
 * --progress, --devices, --nproc.
 * @throws {UsageError} naming the flags given.
 */
function checkResumeFlags(dir: string, argv: RunArgv): void {
  const given = experimentFlagsGiven(argv);
  if (!given.length) return;
  throw new UsageError(
    `--resume ${dir} takes every setting from ${join(dir, 'config.json')}; ${given.join(', ')} ${given.length === 1 ? 'is' : 'are'} not used with it. ` +
      "Edit config.json instead (new seeds, device, threads, paths and metric settings may change on resume; a finished cell's training settings may not), " +
      `or re-score the stored predictions with \`cxrmask eval ${dir} --threshold-rule …\`. With --resume only --progress, --devices and --nproc are taken`,
  );
}

function configFromResume(dir: string): ExperimentConfig {
  if (!existsSync(join(dir, 'config.json')))
    throw new UsageError(`--resume ${dir}: not a run folder (no config.json)`);
  return loadConfig(join(dir, 'config.json'));
}

export default runCommandModule;
