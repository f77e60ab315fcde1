#!/usr/bin/env node
/** The `cxrmask` CLI: one yargs command module per command. */
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { packageVersion } from '../experiment/run.js';
import cache from './cache.js';
import demo from './demo.js';
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

function isCommand(x: unknown): x is AnyCommand {
  return typeof x === 'object' && x !== null && 'command' in x && 'handler' in x;
}

/** Command modules loaded lazily (the native layer's doctor), skipped when absent. */
async function layerCommands(): Promise<AnyCommand[]> {
  const out: AnyCommand[] = [];
  for (const name of ['doctor']) {
    const spec = `./${name}.js`;
    try {
      const mod = (await import(spec)) as Record<string, unknown>;
      const cmd = isCommand(mod['default']) ? mod['default'] : Object.values(mod).find(isCommand);
      if (cmd) out.push(cmd);
    } catch (e) {
      if (process.env['CXRMASK_DEBUG']) process.stderr.write(`command ${name} unavailable: ${(e as Error).message}\n`);
    }
  }
  return out;
}

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
    ...(await layerCommands()),
  ];
  return yargs(argv)
    .scriptName('cxrmask')
    .usage('$0 <command> [options]\n\nAnatomical masking (CheXmask contours) as visual priors for chest X-ray classification.')
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
