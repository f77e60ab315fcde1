/** `cxrmask overlay`: one image + its CheXmask row → a Figure-1-like picture (original | masked). */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { DataError, UsageError } from '../common/errors.js';
import { chexmaskRowFor } from '../data/chexmask.js';
import { checkFigurePath, renderFigure } from '../report/figure.js';
import { COMMAND_TEXT } from './commands.js';
import {
  checkOutputFile,
  type ImageLimitArgv,
  imageLimitOptions,
  imageLimitsFrom,
  parseList,
} from './options.js';
import { runCommand } from './run-command.js';

export interface OverlayArgv extends ImageLimitArgv {
  image: string;
  chexmask: string;
  id: string;
  out: string;
  alpha: number;
  thickness: number;
  source: 'landmarks' | 'rle';
  lungColor: string;
  heartColor: string;
  layout: 'pair' | 'masked';
  grid: 'full' | 'preprocessed';
  preset: 'biomedclip' | 'paper';
  minDice: number;
}

function color(s: string, opt: string): [number, number, number] {
  const hex = /^#?([0-9a-f]{6})$/i.exec(s);
  const v = hex
    ? [0, 2, 4].map((k) => Number.parseInt((hex[1] as string).slice(k, k + 2), 16) / 255)
    : (parseList(s) ?? []).map(Number).map((x) => (x > 1 ? x / 255 : x));
  if (v.length !== 3 || v.some((x) => !Number.isFinite(x) || x < 0 || x > 1)) {
    throw new DataError('bad-option', `--${opt} must be #rrggbb or r,g,b (0–1 or 0–255), got "${s}"`);
  }
  return v as [number, number, number];
}

const command: CommandModule<object, OverlayArgv> = {
  ...COMMAND_TEXT.overlay,
  builder: (y: Argv<object>) =>
    imageLimitOptions(y)
      .option('image', { type: 'string', demandOption: true, describe: 'JPEG, PNG or DICOM' })
      .option('chexmask', { type: 'string', demandOption: true, describe: 'CheXmask CSV holding the row' })
      .option('id', { type: 'string', demandOption: true, describe: 'dicom_id of the row' })
      .option('out', { type: 'string', demandOption: true, describe: 'output PNG (or .jpg)' })
      .option('alpha', { type: 'number', default: 1, describe: 'α of Eq. 1' })
      .option('thickness', {
        type: 'number',
        default: 2,
        describe: 'contour thickness in 224-grid pixels (scaled at full resolution)',
      })
      .option('source', {
        choices: ['landmarks', 'rle'] as const,
        default: 'landmarks' as const,
        describe: 'contours from landmarks or RLE masks',
      })
      .option('lung-color', { type: 'string', default: '#ff0000', describe: 'lung contour colour' })
      .option('heart-color', { type: 'string', default: '#0000ff', describe: 'heart contour colour' })
      .option('layout', {
        choices: ['pair', 'masked'] as const,
        default: 'pair' as const,
        describe: 'original | masked side by side, or masked only',
      })
      .option('grid', {
        choices: ['full', 'preprocessed'] as const,
        default: 'full' as const,
        describe: 'full resolution or the 224 model input',
      })
      .option('preset', {
        choices: ['biomedclip', 'paper'] as const,
        default: 'biomedclip' as const,
        describe: 'preprocessing (with --grid preprocessed)',
      })
      .option('min-dice', {
        type: 'number',
        default: 0,
        describe: 'refuse the row below this Dice RCA (Mean)',
      }) as unknown as Argv<OverlayArgv>,
  handler: (argv: ArgumentsCamelCase<OverlayArgv>) =>
    runCommand(async () => {
      checkOutputFile('out', argv.out);
      try {
        checkFigurePath(argv.out);
      } catch (e) {
        throw new UsageError(`--out ${(e as Error).message}`);
      }
      const row = await chexmaskRowFor(argv.chexmask, argv.id, argv.minDice, argv.source === 'rle');
      const lung = color(argv.lungColor, 'lung-color');
      const heart = color(argv.heartColor, 'heart-color');
      const r = await renderFigure(
        argv.image,
        row,
        {
          overlay: {
            alpha: argv.alpha,
            thickness: argv.thickness,
            source: argv.source,
            colors: { rightLung: lung, leftLung: lung, heart },
          },
          layout: argv.layout,
          grid: argv.grid,
          preprocess: { preset: argv.preset },
          limits: imageLimitsFrom(argv),
        },
        argv.out,
      );
      process.stdout.write(`${argv.out} (${r.width}×${r.height}, Dice RCA ${row.diceMean})\n`);
    }),
};
export default command;
