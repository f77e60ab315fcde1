/** `cxrmask index`: MIMIC-CXR-JPG root → index.jsonl + summary.json. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { buildIndex, type IndexOptions, PRESETS, writeIndex } from '../data/mimic.js';
import { parseList } from './options.js';
import { runCommand } from './run-command.js';

export interface IndexArgv {
  root: string;
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
  command: 'index',
  describe: 'Index a MIMIC-CXR-JPG root (frontal views, five labels, split) into index.jsonl + summary.json',
  builder: (y: Argv<object>) =>
    y
      .option('root', {
        type: 'string',
        demandOption: true,
        describe: 'MIMIC-CXR-JPG root (files/ and the mimic-cxr-2.0.0-*.csv[.gz])',
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
      .example('$0 index --root mimic --out data/index --preset paper', '') as unknown as Argv<IndexArgv>,
  handler: (argv: ArgumentsCamelCase<IndexArgv>) =>
    runCommand(async () => {
      const fr = parseList(argv.splitFractions)?.map(Number);
      const opts: IndexOptions = {
        ...PRESETS[argv.preset],
        root: argv.root,
        checkFiles: argv.checkFiles,
        ...(argv.views ? { views: parseList(argv.views) } : {}),
        ...(argv.uncertain ? { uncertain: argv.uncertain } : {}),
        ...(argv.blank ? { blank: argv.blank } : {}),
        ...(argv.requirePositive !== undefined ? { requirePositive: argv.requirePositive } : {}),
        ...(argv.split ? { split: argv.split } : {}),
        ...(argv.splitSeed !== undefined ? { splitSeed: argv.splitSeed } : {}),
        ...(fr ? { splitFractions: fr as [number, number, number] } : {}),
      };
      const { entries, summary } = await buildIndex(opts);
      const files = await writeIndex(argv.out, entries, summary);
      process.stdout.write(
        `${JSON.stringify({ ...files, kept: summary.kept, perSplit: summary.perSplit, perView: summary.perView, dropped: summary.dropped.counts }, null, 2)}\n`,
      );
    }),
};
export default command;
