/** `cxrmask index`: a dataset root (MIMIC-CXR-JPG, NIH ChestX-ray14, CheXpert, PadChest, VinDr-CXR) → index.jsonl + summary.json. */

import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { DataError } from '../common/errors.js';
import type { DatasetIndexOptions } from '../data/datasets/common.js';
import { DATASETS, type DatasetName, READER_RULES, type ReaderRule } from '../data/datasets/names.js';
import { buildDatasetIndex } from '../data/datasets/registry.js';
import { PRESETS, writeIndex } from '../data/mimic.js';
import { COMMAND_TEXT } from './commands.js';
import { parseList } from './options.js';
import { runCommand } from './run-command.js';

export interface IndexArgv {
  dataset: DatasetName;
  root: string;
  validateFraction?: number;
  readerRule?: ReaderRule;
  out: string;
  preset: 'default' | 'paper';
  views?: string;
  uncertain?: 'zeros' | 'ones' | 'ignore';
  blank?: 'zeros' | 'ignore';
  requirePositive?: boolean;
  split?: 'official' | 'patient';
  splitSeed?: number;
  splitFractions?: string;
  checkFiles: boolean;
}

const command: CommandModule<object, IndexArgv> = {
  ...COMMAND_TEXT.index,
  builder: (y: Argv<object>) =>
    y
      .option('dataset', {
        choices: DATASETS,
        default: 'mimic' as const,
        describe: 'which dataset the root holds (docs/data.md: its files, labels and split)',
      })
      .option('root', {
        type: 'string',
        demandOption: true,
        describe:
          'dataset root (mimic: files/ + mimic-cxr-2.0.0-*.csv[.gz]; nih14: Data_Entry_2017_v2020.csv + the split lists + images/; chexpert: train.csv, valid.csv, train/, valid/)',
      })
      .option('validate-fraction', {
        type: 'number',
        describe:
          'nih14/chexpert: fraction of the official training patients held out as validate (default 0.1)',
      })
      .option('reader-rule', {
        choices: READER_RULES,
        describe:
          "vindr: a finding is positive when more than half of the image's radiologists marked it (majority, the default) or at least one (any)",
      })
      .option('out', { type: 'string', demandOption: true, describe: 'output folder' })
      .option('preset', {
        choices: ['default', 'paper'] as const,
        default: 'default' as const,
        describe: 'paper: at least one positive, official split',
      })
      .option('views', { type: 'string', describe: 'comma-separated ViewPosition values (default PA,AP)' })
      .option('uncertain', {
        choices: ['zeros', 'ones', 'ignore'] as const,
        describe: 'policy for -1 labels (default zeros)',
      })
      .option('blank', {
        choices: ['zeros', 'ignore'] as const,
        describe: 'policy for blank labels (default zeros)',
      })
      .option('require-positive', {
        type: 'boolean',
        describe: 'keep only images with a positive among the five',
      })
      .option('split', {
        choices: ['official', 'patient'] as const,
        describe: 'official split CSV or a seeded patient-level split',
      })
      .option('split-seed', { type: 'number', describe: 'seed of the patient-level split' })
      .option('split-fractions', {
        type: 'string',
        describe: 'train,validate,test fractions (default 0.8,0.1,0.1)',
      })
      .option('check-files', {
        type: 'boolean',
        default: true,
        describe: 'drop entries whose JPEG is missing',
      })
      .example('$0 index --root mimic --out data/index --preset paper', '')
      .example('$0 index --dataset nih14 --root nih --out data/nih-index', '') as unknown as Argv<IndexArgv>,
  handler: (argv: ArgumentsCamelCase<IndexArgv>) =>
    runCommand(async () => {
      const fr = parseList(argv.splitFractions)?.map(Number);
      const opts: DatasetIndexOptions = {
        ...PRESETS[argv.preset],
        dataset: argv.dataset,
        root: argv.root,
        ...(argv.validateFraction !== undefined ? { validateFraction: argv.validateFraction } : {}),
        ...(argv.readerRule ? { readerRule: argv.readerRule } : {}),
        checkFiles: argv.checkFiles,
        ...(argv.views ? { views: parseList(argv.views) } : {}),
        ...(argv.uncertain ? { uncertain: argv.uncertain } : {}),
        ...(argv.blank ? { blank: argv.blank } : {}),
        ...(argv.requirePositive !== undefined ? { requirePositive: argv.requirePositive } : {}),
        ...(argv.split ? { split: argv.split } : {}),
        ...(argv.splitSeed !== undefined ? { splitSeed: argv.splitSeed } : {}),
        ...(fr ? { splitFractions: fr as [number, number, number] } : {}),
      };
      const { entries, summary } = await buildDatasetIndex(opts);
      // an index of nothing (the images under another folder name than the adapter looks in, a
      // filter that drops every row) is refused here, not found out by a later cache or run
      if (summary.kept === 0)
        throw new DataError(
          'no-images',
          `no image of ${argv.dataset} was kept: every listed row was dropped (${JSON.stringify(summary.dropped.counts)}); nothing written. ` +
            'For image-missing rows, check where the images are under the root (docs/public-data.md gives each layout); ' +
            '`--no-check-files` indexes without looking',
          { file: argv.root },
        );
      const files = await writeIndex(argv.out, entries, summary);
      const { kept, perSplit, perView } = summary;
      const out = { ...files, dataset: argv.dataset, kept, perSplit, perView };
      process.stdout.write(
        `${JSON.stringify({ ...out, dropped: summary.dropped.counts, duplicates: summary.duplicates.counts }, null, 2)}\n`,
      );
    }),
};
export default command;
