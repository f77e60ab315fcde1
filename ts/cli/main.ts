#!/usr/bin/env node
/** The `cxrmask` CLI: one yargs command module per command. */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { packageVersion } from '../experiment/run.js';
import cache from './cache.js';
import demo from './demo.js';
import doctor from './doctor.js';
import evalCmd from './eval.js';
import explain from './explain.js';
import exportCmd from './export.js';
import indexCmd from './index.js';
import overlay from './overlay.js';
import predict from './predict.js';
import run from './run.js';
import segmenter from './segmenter.js';
import serve from './serve.js';
import setup from './setup.js';
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
    serve,
    indexCmd,
    cache,
    overlay,
    explain,
    synth,
    doctor,
    segmenter,
    exportCmd,
    setup,
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

// Run when executed directly, also through the symlinks npm makes for `bin` (npx, node_modules/.bin).
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isEntryPoint()) {
  const cli = await buildCli();
  await cli.parseAsync();
}
