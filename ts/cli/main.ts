#!/usr/bin/env node
/** The `cxrmask` CLI: one yargs command module per command. */
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { packageVersion } from '../experiment/run.js';
import cache from './cache.js';
import demo from './demo.js';
import doctor from './doctor.js';
import evalCmd from './eval.js';
import indexCmd from './index.js';
import overlay from './overlay.js';
import predict from './predict.js';
import run from './run.js';
import synth from './synth.js';
import train from './train.js';
import zeroshot from './zeroshot.js';

// biome-ignore lint/suspicious/noExplicitAny: command modules have their own argv types
type AnyCommand = CommandModule<any, any>;

export async function buildCli(argv: string[] = hideBin(process.argv)) {
  const commands: AnyCommand[] = [
    demo,
    run,
    zeroshot,
    train,
    evalCmd,
    predict,
    indexCmd,
    cache,
    overlay,
    synth,
    doctor,
  ];
  return yargs(argv)
    .scriptName('cxrmask')
    .usage(
      '$0 <command> [options]\n\nAnatomical masking (CheXmask contours) as visual priors for chest X-ray classification.',
    )
    .command(commands)
    .demandCommand(1, 'Choose a command (see the list above).')
    .strict()
    .recommendCommands()
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .wrap(Math.min(120, process.stdout.columns || 100))
    .epilogue('Docs: README.md, docs/experiments.md');
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain || process.argv[1]?.endsWith('/cli/main.js') || process.argv[1]?.endsWith('/cli/main.ts')) {
  const cli = await buildCli();
  await cli.parseAsync();
}
