/** `cxrmask synth`: a synthetic MIMIC-CXR-JPG tree + CheXmask CSV (the demo's and the tests' data). */

import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { DATASETS, type DatasetName } from '../data/datasets/names.js';
import { synthesize } from '../synth/synthesize.js';
import { COMMAND_TEXT } from './commands.js';
import { progress } from './progress.js';
import { runCommand } from './run-command.js';

export interface SynthArgv {
  out: string;
  dataset: DatasetName;
  n: number;
  seed: number;
  width: number;
  height: number;
  lateralRate?: number;
  lowRcaRate?: number;
  landmarks: 'numpy' | 'flat';
  workers: number;
  progress: boolean;
  force: boolean;
}

const command: CommandModule<object, SynthArgv> = {
  ...COMMAND_TEXT.synth,
  builder: (y: Argv<object>) =>
    y
      .option('out', {
        type: 'string',
        demandOption: true,
        describe:
          'output folder (gets <dataset>/ and chexmask/; refused when they hold data synth did not write, see --force)',
      })
      .option('dataset', {
        choices: DATASETS,
        default: 'mimic' as const,
        describe: 'layout written: its tables, image files (JPEG, PNG, 16-bit PNG, DICOM) and CheXmask file',
      })
      .option('n', { type: 'number', default: 500, describe: 'number of images' })
      .option('seed', {
        type: 'number',
        default: 0,
        describe: 'random seed, 0 to 2^32-1 (same seed → same files)',
      })
      .option('width', { type: 'number', default: 320, describe: 'nominal image width (±6% per image)' })
      .option('height', { type: 'number', default: 384, describe: 'nominal image height (±6% per image)' })
      .option('lateral-rate', {
        type: 'number',
        describe: 'fraction of studies with a lateral image (default 0.25)',
      })
      .option('low-rca-rate', {
        type: 'number',
        describe: 'fraction of CheXmask rows with Dice RCA < 0.7 (default 0.06)',
      })
      .option('landmarks', {
        choices: ['numpy', 'flat'] as const,
        default: 'numpy' as const,
        describe: 'landmark serialisation',
      })
      .option('workers', {
        type: 'number',
        default: 0,
        describe: 'worker threads rendering images (0: this thread)',
      })
      .option('progress', { type: 'boolean', default: true, describe: 'progress bar' })
      .option('force', {
        type: 'boolean',
        default: false,
        describe:
          'replace <out>/<dataset>/ and <out>/chexmask/<CheXmask file> even when synth did not write them (deletes them)',
      })
      .example('$0 synth --out data/synth --n 1000 --seed 1', '')
      .example('$0 synth --dataset nih14 --out data/synth-nih --n 500', '') as unknown as Argv<SynthArgv>,
  handler: (argv: ArgumentsCamelCase<SynthArgv>) =>
    runCommand(async () => {
      const bar = progress('synth', argv.progress);
      const s = await synthesize({
        out: argv.out,
        dataset: argv.dataset,
        n: argv.n,
        seed: argv.seed,
        width: argv.width,
        height: argv.height,
        lateralRate: argv.lateralRate,
        lowRcaRate: argv.lowRcaRate,
        landmarkFormat: argv.landmarks,
        workers: argv.workers,
        force: argv.force,
        onProgress: bar.update,
      });
      bar.stop();
      const { images: _i, ...rest } = s;
      process.stdout.write(`${JSON.stringify(rest, null, 2)}\n`);
    }),
};
export default command;
