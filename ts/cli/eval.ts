/** `cxrmask eval`: recompute metrics and reports of a run from its stored predictions. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { UsageError } from '../common/errors.js';
import { realBackend } from '../experiment/backend-real.js';
import { ConfigSchema, parseConfig } from '../experiment/config.js';
import { evalSummary, reevaluate } from '../report/reevaluate.js';
import { COMMAND_TEXT } from './commands.js';
import { metricOptions } from './options.js';
import { runCommand } from './run-command.js';
import { installStop } from './signals.js';

export interface EvalArgv {
  run: string;
  thresholdRule?: 'youden' | 'f1' | 'accuracy' | 'fixed';
  operatingPointRule?: 'youden' | 'f1' | 'accuracy' | 'fixed';
  threshold?: number;
  bootstrap?: number;
  primary?: 'meanLabelAccuracy' | 'macroAUROC' | 'exactMatch' | 'macroF1';
}

export const evalCommand: CommandModule<object, EvalArgv> = {
  ...COMMAND_TEXT.eval,
  builder: (y: Argv<object>) =>
    metricOptions(y)
      .positional('run', {
        type: 'string',
        describe: 'run folder (runs/<timestamp>-<name>)',
        demandOption: true,
      })
      .example(
        '$0 eval runs/20250101-120000-demo --threshold-rule fixed --threshold 0.5',
        'accuracy at 0.5',
      ) as unknown as Argv<EvalArgv>,
  handler: async (argv: ArgumentsCamelCase<EvalArgv>) => {
    await runCommand(async () => {
      if (!argv.run) throw new UsageError('a run folder is required');
      const overrides = Object.fromEntries(
        Object.entries({
          thresholdRule: argv.thresholdRule,
          operatingPointRule: argv.operatingPointRule,
          fixedThreshold: argv.threshold,
          bootstrap: argv.bootstrap,
          primary: argv.primary,
        }).filter(([, v]) => v !== undefined),
      );
      // validate the overrides before loading anything
      parseConfig({ data: { cache: '-' }, metrics: overrides }, 'flags');
      void ConfigSchema;
      // the first Ctrl-C stops the scoring before anything is written; a second exits at once, which
      // leaves the old results.json or the new one, never reports of other numbers (report/publish.ts)
      const stop = installStop(() => 'Nothing is written until the scoring ends.');
      try {
        process.stdout.write(evalSummary(await reevaluate(argv.run, await realBackend(), overrides, stop)));
      } finally {
        stop.release();
      }
    });
  },
};

export default evalCommand;
