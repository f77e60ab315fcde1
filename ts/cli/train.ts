/** `cxrmask train`: one setup (linear probe or joint fine-tuning) on chosen training variants and seeds. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { launchIfAsked, MAX_LOCAL_RANKS, NPROC_HELP } from '../distributed/launch.js';
import { COMMAND_TEXT } from './commands.js';
import { configFromArgv } from './config-merge.js';
import { checkCount, type ExperimentArgv, experimentOptions } from './options.js';
import { executeRun } from './run.js';
import { runCommand } from './run-command.js';

export interface TrainArgv extends ExperimentArgv {
  setup: 'linear-probe' | 'finetune';
  trainOn: ('original' | 'masked')[];
  progress?: boolean;
  nproc?: number;
}

export const trainCommand: CommandModule<object, TrainArgv> = {
  ...COMMAND_TEXT.train,
  builder: (y: Argv<object>) =>
    experimentOptions(y)
      .option('setup', {
        choices: ['linear-probe', 'finetune'] as const,
        demandOption: true,
        describe:
          'linear-probe: frozen features + linear head; finetune: encoder + head, separate learning rates',
      })
      .option('train-on', {
        type: 'array',
        choices: ['original', 'masked'],
        default: ['original', 'masked'],
        describe: 'training image variants',
      })
      .option('nproc', { type: 'number', describe: NPROC_HELP })
      .example(
        '$0 train --setup finetune --train-on masked --seeds 0 --cache data/cache',
        'one fine-tuning cell',
      ) as unknown as Argv<TrainArgv>,
  handler: async (argv: ArgumentsCamelCase<TrainArgv>) => {
    // checked before any rank is started (a typo would start that many processes)
    await runCommand(async () => checkCount('nproc', argv.nproc, 1, MAX_LOCAL_RANKS));
    if (process.exitCode) return;
    if (await launchIfAsked(argv.nproc)) return;
    let dir: string | null = null;
    await runCommand(
      async () => {
        const config = configFromArgv(argv, {
          name: argv.name ?? argv.setup,
          trainVariants: argv.trainOn,
          zeroshot: { enabled: false },
          linearProbe: { enabled: argv.setup === 'linear-probe' },
          finetune: { enabled: argv.setup === 'finetune' },
        });
        await executeRun(config, { progress: argv.progress, onRunDir: (d) => (dir = d) });
      },
      { resume: () => dir },
    );
  },
};

export default trainCommand;
