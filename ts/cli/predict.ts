/** `cxrmask predict`: one image, with and without its lung/heart contours (CheXmask row or --segmenter) → per-finding probabilities. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { UsageError } from '../common/errors.js';
import { FINDINGS } from '../common/labels.js';
import { chexmaskRowFor } from '../data/chexmask.js';
import { COMMAND_TEXT } from './commands.js';
import { openPredictor, type PredictorArgv, predictorOptions, predictorPlan } from './predictor-args.js';
import { runCommand } from './run-command.js';

export interface PredictArgv extends PredictorArgv {
  image: string;
  chexmask?: string;
  dicomId?: string;
  json?: boolean;
}

export const predictCommand: CommandModule<object, PredictArgv> = {
  ...COMMAND_TEXT.predict,
  builder: (y: Argv<object>) =>
    predictorOptions(y)
      .positional('image', { type: 'string', describe: 'JPEG/PNG file', demandOption: true })
      .option('chexmask', { type: 'string', describe: 'CheXmask CSV holding the row of this image' })
      .option('dicom-id', {
        type: 'string',
        describe: 'row id in the CheXmask CSV (default: the image file name without extension)',
      })
      .option('json', { type: 'boolean', describe: 'print JSON' })
      .example('$0 predict x.jpg --chexmask MIMIC-CXR-JPG.csv', 'zero-shot, original vs masked')
      .example('$0 predict x.jpg --segmenter .cache/demo-data/segmenter', 'masks predicted from the image')
      .example(
        '$0 predict x.jpg --chexmask cm.csv --checkpoint runs/R/cells/jft-masked-s0/best.ckpt',
        'a fine-tuned model',
      ) as unknown as Argv<PredictArgv>,
  handler: async (argv: ArgumentsCamelCase<PredictArgv>) => {
    await runCommand(async () => {
      if (argv.dicomId && !argv.chexmask) throw new UsageError('--dicom-id needs --chexmask');
      const plan = predictorPlan(argv); // flags checked before the CSV is searched
      const id = argv.dicomId ?? argv.image.replace(/^.*[\\/]/, '').replace(/\.[^.]+$/, '');
      // the row keeps its RLE masks: a cell trained on RLE contours draws from them
      const row = argv.chexmask ? await chexmaskRowFor(argv.chexmask, id, plan.minDice) : null;
      const p = await openPredictor(argv, plan);
      try {
        const r = await p.predict(argv.image, row);
        if (argv.json) {
          process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
          return;
        }
        const lines = [
          `${r.kind} — ${argv.image} (masks: ${r.maskSource ?? 'none'})`,
          '| Finding | original | masked | Δ |',
          '|---|---|---|---|',
        ];
        for (const f of FINDINGS) {
          const m = r.masked ? r.masked[f].toFixed(3) : 'n/a';
          const d = r.delta ? `${r.delta[f] >= 0 ? '+' : ''}${r.delta[f].toFixed(3)}` : 'n/a';
          lines.push(`| ${f} | ${r.original[f].toFixed(3)} | ${m} | ${d} |`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        await p.dispose();
      }
    });
  },
};

export default predictCommand;
