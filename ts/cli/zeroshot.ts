/** `cxrmask zeroshot`: zero-shot only (both protocols), on original and masked test images. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { COMMAND_TEXT } from './commands.js';
import { configFromArgv } from './config-merge.js';
import { type ExperimentArgv, experimentOptions } from './options.js';
import { executeRun } from './run.js';
import { runCommand } from './run-command.js';

export const zeroshotCommand: CommandModule<object, ExperimentArgv & { progress?: boolean }> = {
  ...COMMAND_TEXT.zeroshot,
  builder: (y: Argv<object>) =>
    experimentOptions(y).example(
      '$0 zeroshot --cache data/cache --prompt "chest radiograph with {finding}"',
      'custom prompt',
    ) as unknown as Argv<ExperimentArgv & { progress?: boolean }>,
  handler: async (argv: ArgumentsCamelCase<ExperimentArgv & { progress?: boolean }>) => {
    let dir: string | null = null;
    await runCommand(
      async () => {
        const config = configFromArgv(argv, {
          name: argv.name ?? 'zeroshot',
          zeroshot: { enabled: true },
          linearProbe: { enabled: false },
          finetune: { enabled: false },
        });
        await executeRun(config, { progress: argv.progress, onRunDir: (d) => (dir = d) });
      },
      { resume: () => dir },
    );
  },
};

export default zeroshotCommand;
