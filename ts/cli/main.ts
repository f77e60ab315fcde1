#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
/** The `cxrmask` CLI: one yargs command module per command. */
import { packageVersion } from '../common/version.js';
import { packageRoot } from '../native.js';

import cache from './cache.js';
import demo from './demo.js';
import doctor from './doctor.js';
import evalCmd from './eval.js';
import explain from './explain.js';
import exportCmd from './export.js';
import indexCmd from './index-command.js';
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

/** What yargs' (untyped) getOptions() reports: every declared option, and those declared as arrays. */
interface DeclaredOptions {
  key: Record<string, unknown>;
  array: string[];
}

/**
 * Where the package's docs are, as a path the user can open from here: README.md and docs/ sit in the
 * package (node_modules/cxrmask in a project that installed it), not in the project.
 */
export function docsEpilogue(cwd: string = process.cwd(), root: string = packageRoot): string {
  const rel = relative(cwd, root);
  const at = (f: string) =>
    !rel ? f : rel.startsWith('..') || isAbsolute(rel) ? join(root, f) : join(rel, f);
  return `Docs: ${at('README.md')}, ${at('docs/experiments.md')} (configs, the grid, metrics) and the rest of ${at('docs')}/`;
}

/**
 * Options given more than once: yargs collects them into an array, which a single-valued option's
 * code would take for its value (`--out a --out b` → a TypeError far from the flag). Refused here,
 * for every command, naming the option; options declared as arrays keep their lists.
 */
export function repeatedOptions(argv: Record<string, unknown>, declared: DeclaredOptions) {
  const problems: string[] = [];
  for (const [k, v] of Object.entries(argv))
    if (Array.isArray(v) && k !== '_' && k in declared.key && !declared.array.includes(k))
      problems.push(`--${k} was given ${v.length} times (${v.map(String).join(', ')}); it takes one value`);
  return problems;
}

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
  const y = yargs(argv);
  return y
    .scriptName('cxrmask')
    .usage(
      '$0 <command> [options]\n\nAnatomical masking (CheXmask contours) as visual priors for chest X-ray classification.',
    )
    .command(commands)
    .demandCommand(1, 'Choose a command (see the list above).')
    .strict()
    .check((a) => {
      const problems = repeatedOptions(a, (y as unknown as { getOptions(): DeclaredOptions }).getOptions());
      if (problems.length) throw new Error(problems.join('\n'));
      return true;
    }, true)
    .recommendCommands()
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .wrap(Math.min(120, process.stdout.columns || 100))
    .epilogue(docsEpilogue());
}

// Run when executed as `node dist/cli/main.js`; the package's bin (bin/cxrmask.mjs) checks the Node version
// first and calls buildCli itself.
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
