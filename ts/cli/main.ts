#!/usr/bin/env node
import { readFileSync, realpathSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
/** The `cxrmask` CLI: one yargs command module per command. */
import { dropOutputWhenClosed } from '../common/closed-output.js';
import { UsageError } from '../common/errors.js';
import { reportError } from '../common/report-error.js';
import { packageVersion } from '../common/version.js';
import { packageRoot } from '../native.js';

import { COMMAND_TEXT, type CommandName } from './commands.js';

// biome-ignore lint/suspicious/noExplicitAny: command modules have their own argv types
type AnyCommand = CommandModule<any, any>;

// Each command's module, loaded when the command runs or shows its help: loading all sixteen (and the
// whole library under them) for `--version` or a listing opened ~100 files at once.
const COMMAND_MODULES: Record<CommandName, () => Promise<{ default: AnyCommand }>> = {
  demo: () => import('./demo.js'),
  run: () => import('./run.js'),
  zeroshot: () => import('./zeroshot.js'),
  train: () => import('./train.js'),
  eval: () => import('./eval.js'),
  predict: () => import('./predict.js'),
  serve: () => import('./serve.js'),
  index: () => import('./index-command.js'),
  cache: () => import('./cache.js'),
  overlay: () => import('./overlay.js'),
  explain: () => import('./explain.js'),
  synth: () => import('./synth.js'),
  doctor: () => import('./doctor.js'),
  segmenter: () => import('./segmenter.js'),
  export: () => import('./export.js'),
  setup: () => import('./setup.js'),
};

/** This process's open-file limit where the system says (Linux's /proc), else null. */
function openFileLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// Below this many open files, loading the library can fail on its own descriptors
const LOW_OPEN_FILE_LIMIT = 256;

/**
 * Whether a module-not-found error names a resolved file, as Node does when it could not open that
 * file or its package.json for lack of descriptors ("Cannot find package '/…/sharp/index.js'", a path
 * that need not exist: without package.json it guesses index.js); a package really missing is named
 * bare ('zod').
 */
function namesResolvedFile(e: NodeJS.ErrnoException & { url?: string }): boolean {
  if (e.url?.startsWith('file:')) return true;
  const named = /^Cannot find (?:module|package) '([^']+)'/.exec(e.message)?.[1];
  return !!named && (isAbsolute(named) || named.startsWith('file:'));
}

/**
 * A command module that could not be loaded. Out of descriptors, the loader says EMFILE, or that a
 * resolved file it could not open is missing: under a low limit either is said as what to raise. A
 * package named bare (not installed) is said as such, whatever the limit.
 */
function loadFailure(name: CommandName, e: NodeJS.ErrnoException, limit: number | null): Error {
  const outOfFiles =
    e.code === 'EMFILE' ||
    e.code === 'ENFILE' ||
    (e.code === 'ERR_MODULE_NOT_FOUND' &&
      limit !== null &&
      limit < LOW_OPEN_FILE_LIMIT &&
      namesResolvedFile(e));
  if (!outOfFiles) return e;
  const had = limit === null ? '' : ` (the open-file limit is ${limit})`;
  return new UsageError(
    `cannot load the ${name} command: too many open files${had}; raise the limit (e.g. ulimit -n 1024) and run it again. The loader said: ${e.message}`,
  );
}

/** `name` as yargs sees it: its usage and description now, its options and body once it is used. */
function lazyCommand(name: CommandName): AnyCommand {
  let loaded: Promise<AnyCommand> | undefined;
  const load = () => {
    if (loaded) return loaded;
    const limit = openFileLimit();
    loaded = COMMAND_MODULES[name]().then(
      (m) => m.default,
      (e) => {
        throw loadFailure(name, e, limit);
      },
    );
    return loaded;
  };
  return {
    ...COMMAND_TEXT[name],
    builder: async (y) => {
      const { builder } = await load();
      return typeof builder === 'function' ? builder(y) : y.options(builder ?? {});
    },
    handler: async (argv) => (await load()).handler(argv),
  };
}

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

/**
 * `--` ends the options (POSIX): what follows is a file name even when it starts with '-'. yargs
 * would not fill a positional (`predict -- -x.jpg`) from there, so each such word becomes `./-x.jpg`,
 * the same file, and takes the place of the `--`.
 */
export function operandsAfterDashDash(argv: readonly string[]): string[] {
  const at = argv.indexOf('--');
  if (at < 0) return [...argv];
  const operands = argv.slice(at + 1).map((a) => (a.startsWith('-') ? `./${a}` : a));
  return [...argv.slice(0, at), ...operands];
}

const NO_COMMAND = 'Choose a command (see the list above).';

/** yargs names an unknown `--bogus-flag` twice ("bogus-flag, bogusFlag"): once is enough. */
function withoutCamelCopies(message: string): string {
  const m = /^Unknown arguments?: (.*)$/s.exec(message);
  if (!m) return message;
  const names = m[1]!.split(', ');
  const camel = (n: string) => n.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const kept = names.filter((n) => !names.some((o) => o !== n && o.includes('-') && camel(o) === n));
  return `Unknown argument${kept.length > 1 ? 's' : ''}: ${kept.join(', ')}`;
}

/** The help command for the command line `argv` starts: `cxrmask predict --help`, else `cxrmask --help`. */
function helpCommand(argv: readonly string[]): string {
  const words = argv.filter((a) => !a.startsWith('-'));
  const name = words[0] as CommandName | undefined;
  if (!name || !(name in COMMAND_TEXT)) return 'cxrmask --help';
  // the segmenter's subcommands have options of their own
  const sub = name === 'segmenter' && words[1] && !words[1].includes('/') ? ` ${words[1]}` : '';
  return `cxrmask ${name}${sub} --help`;
}

export async function buildCli(argv: string[] = hideBin(process.argv)) {
  const commands = (Object.keys(COMMAND_TEXT) as CommandName[]).map(lazyCommand);
  const y = yargs(operandsAfterDashDash(argv));
  return y
    .scriptName('cxrmask')
    .usage(
      '$0 <command> [options]\n\nAnatomical masking (CheXmask contours) as visual priors for chest X-ray classification.',
    )
    .command(commands)
    .demandCommand(1, NO_COMMAND)
    .strict()
    .check((a) => {
      const problems = repeatedOptions(a, (y as unknown as { getOptions(): DeclaredOptions }).getOptions());
      if (problems.length) throw new UsageError(problems.join('\n'));
      return true;
    }, true)
    .fail((message, error, parser) => {
      // a command's own failure: reportError words it and picks the exit code
      if (error) throw error;
      // what the parser found wrong with the words typed (an unknown, missing or repeated option, a
      // value outside its choices) is the user's to fix: one line and exit 2, not the help and exit 1
      if (message === NO_COMMAND) {
        parser.showHelp((h: string) => process.stderr.write(`${h}\n\n`));
        throw new UsageError(message);
      }
      throw new UsageError(`${withoutCamelCopies(message)} (\`${helpCommand(argv)}\` lists the options)`);
    })
    .recommendCommands()
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .wrap(Math.min(120, process.stdout.columns || 100))
    .epilogue(docsEpilogue());
}

/** Why this process cannot work where it stands (its working folder was deleted), or null. */
export function workingFolderProblem(): string | null {
  try {
    process.cwd();
    return null;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT'
      ? 'the current folder no longer exists (cd to an existing folder and run it again)'
      : `cannot read the current folder: ${(e as Error).message}`;
  }
}

/**
 * The CLI as a process runs it (the bin, or `node dist/cli/main.js`): a closed output pipe only drops
 * output, a deleted working folder is one line and exit 2 (yargs reads the folder first thing), and a
 * command that cannot even load is one `error:` line.
 */
export async function main(argv: string[] = hideBin(process.argv)): Promise<void> {
  dropOutputWhenClosed();
  const problem = workingFolderProblem();
  if (problem) {
    process.stderr.write(`error: ${problem}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    await (await buildCli(argv)).parseAsync();
  } catch (e) {
    process.exitCode = reportError(e as Error);
  }
}

// Run when executed as `node dist/cli/main.js`; the package's bin (bin/cxrmask.mjs) checks the Node version
// first and calls main itself.
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isEntryPoint()) await main();
