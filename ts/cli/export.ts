/**
 * `cxrmask export`: runs the exporters shipped in the package (tools/*.py) with the Python that
 * scripts/install.mjs chose (build/env.json, else the pinned venv, created when missing). No clone needed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { UsageError } from '../common/errors.js';
import { packageRoot } from '../native.js';
import { COMMAND_TEXT } from './commands.js';
import { runCommand } from './run-command.js';

export interface ExportArgv {
  randomInit?: 'tiny' | 'biomedclip';
  checkpoint?: string;
  segmenter?: 'unet-tiny' | 'unet';
  out: string;
  seed: number;
}

/** The exporters' Python (prints the venv's progress to stderr when it has to be created). */
export function exporterPython(): string {
  const r = spawnSync(process.execPath, [join(packageRoot, 'scripts', 'install.mjs'), '--python'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const py = r.stdout?.trim();
  if (r.status !== 0 || !py) throw new Error('no Python with torch for the exporter (see the lines above)');
  return py;
}

/** The files of a BiomedCLIP checkpoint folder as published (what tools/export_biomedclip.py reads). */
export const CHECKPOINT_FILES = [
  'open_clip_pytorch_model.bin',
  'open_clip_config.json',
  'vocab.txt',
] as const;

/**
 * `--checkpoint` must be a folder holding the published files: checked before Python starts, so that a
 * mistyped path is one line (exit 2), not a traceback after the venv is looked for.
 * @throws {UsageError} not a folder, or a folder missing some of CHECKPOINT_FILES (named).
 */
export function checkCheckpointDir(dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(
      `--checkpoint ${dir}: no such folder (it should hold ${CHECKPOINT_FILES.join(', ')})`,
    );
  const missing = CHECKPOINT_FILES.filter((f) => !existsSync(join(dir, f)));
  if (missing.length)
    throw new UsageError(
      `--checkpoint ${dir}: missing ${missing.join(', ')} (a BiomedCLIP checkpoint folder as published holds ${CHECKPOINT_FILES.join(', ')})`,
    );
}

/**
 * The exporter script and its arguments for one request. `tools`: where the exporters are (the
 * package's tools/).
 * @throws {UsageError} not exactly one of randomInit, checkpoint, segmenter.
 * @throws {Error} the script is not there: the installation is incomplete, a fault (exit 1), not a
 *   refusal of the user's input (Python exits 2 for a script it cannot open, as the exporters do
 *   for input the user can fix).
 */
export function exporterArgs(
  a: Omit<ExportArgv, 'seed'> & { seed?: number },
  tools = join(packageRoot, 'tools'),
): string[] {
  const given = [a.randomInit, a.checkpoint, a.segmenter].filter((v) => v !== undefined).length;
  if (given !== 1) throw new UsageError('give exactly one of --random-init, --checkpoint, --segmenter');
  const seed = ['--seed', String(a.seed ?? 0)];
  const script = join(tools, a.segmenter ? 'segmenter_export.py' : 'export_biomedclip.py');
  if (!existsSync(script))
    throw new Error(
      `the exporter ${script} is missing: the cxrmask installation is incomplete (reinstall it)`,
    );
  if (a.segmenter) return [script, '--random-init', a.segmenter, '--out', a.out, ...seed];
  const src = a.randomInit ? ['--random-init', a.randomInit] : ['--checkpoint', a.checkpoint as string];
  return [script, ...src, '--out', a.out, ...seed];
}

export const exportCommand: CommandModule<object, ExportArgv> = {
  ...COMMAND_TEXT.export,
  builder: (y: Argv<object>) =>
    y
      .option('random-init', {
        choices: ['tiny', 'biomedclip'] as const,
        describe: 'BiomedCLIP architecture with random weights (tiny: a small model of the same kind)',
      })
      .option('checkpoint', {
        type: 'string',
        describe: 'folder with open_clip_pytorch_model.bin, open_clip_config.json and vocab.txt as published',
      })
      .option('segmenter', {
        choices: ['unet-tiny', 'unet'] as const,
        describe: 'lung/heart U-Net with random weights (untrained: predictions refuse it until trained)',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'output folder' })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the random weights' })
      .example('$0 export --random-init tiny --out models/tiny', '')
      .example('$0 export --checkpoint BiomedCLIP/ --out models/biomedclip', 'the published weights')
      .example('$0 export --segmenter unet-tiny --out models/seg-tiny', '') as unknown as Argv<ExportArgv>,
  handler: (argv: ArgumentsCamelCase<ExportArgv>) =>
    runCommand(async () => {
      const args = exporterArgs(argv);
      if (argv.checkpoint !== undefined) checkCheckpointDir(argv.checkpoint);
      const r = spawnSync(exporterPython(), args, { stdio: 'inherit' });
      // the exporters exit 2 for what the user can fix (their arguments, a damaged input file), after
      // their own `error:` line naming the file: that line is the whole message
      if (r.status === 2) {
        process.exitCode = 2;
        return;
      }
      if (r.status !== 0) throw new Error(`the exporter failed (exit ${r.status ?? r.signal}): ${args[0]}`);
    }),
};

export default exportCommand;
