/** `cxrmask predict`: one image, with and without its lung/heart contours (CheXmask row or --segmenter) → per-finding probabilities. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { FINDINGS } from '../common/labels.js';
import { openSegmenter } from '../segment/open.js';
import { chexmaskRowFor, MaskingPredictor } from '../service/predictor.js';
import { bf16Option, type ImageLimitArgv, imageLimitOptions, imageLimitsFrom } from './options.js';
import { runCommand, UsageError } from './run-command.js';

export interface PredictArgv extends ImageLimitArgv {
  image: string;
  chexmask?: string;
  segmenter?: string;
  allowUntrained?: boolean;
  dicomId?: string;
  model: string;
  checkpoint?: string;
  kind?: 'zeroshot' | 'linear-probe' | 'finetune';
  device: 'auto' | 'cpu' | 'cuda';
  bf16?: boolean;
  json?: boolean;
}

export const predictCommand: CommandModule<object, PredictArgv> = {
  command: 'predict <image>',
  describe:
    'Per-finding probabilities for one chest X-ray, as given and with its CheXmask lung/heart contours drawn in (inference-time masking); zero-shot without --checkpoint',
  builder: (y: Argv<object>) =>
    bf16Option(imageLimitOptions(y))
      .positional('image', { type: 'string', describe: 'JPEG/PNG file', demandOption: true })
      .option('chexmask', { type: 'string', describe: 'CheXmask CSV holding the row of this image' })
      .option('segmenter', {
        type: 'string',
        describe:
          'segmenter (a `cxrmask segmenter train` output folder, a .pt in one, or an export folder of trained weights): without --chexmask, the masks are predicted from the image',
      })
      .option('allow-untrained', {
        type: 'boolean',
        describe: 'accept a --segmenter that was never trained (a random-init export: its masks are noise)',
      })
      .option('dicom-id', {
        type: 'string',
        describe: 'row id in the CheXmask CSV (default: the image file name without extension)',
      })
      .option('model', { type: 'string', default: 'models/tiny', describe: 'exported model folder' })
      .option('checkpoint', {
        type: 'string',
        describe: 'best.ckpt of a trained cell (runs/<run>/cells/<cell>/best.ckpt)',
      })
      .option('kind', {
        choices: ['zeroshot', 'linear-probe', 'finetune'] as const,
        describe: 'the kind the checkpoint must record (default: whatever it records; zeroshot without one)',
      })
      .option('device', {
        choices: ['auto', 'cpu', 'cuda'] as const,
        default: 'auto' as const,
        describe: 'where to run',
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
      const imageLimits = imageLimitsFrom(argv);
      const id = argv.dicomId ?? argv.image.replace(/^.*[\\/]/, '').replace(/\.[^.]+$/, '');
      const row = argv.chexmask ? await chexmaskRowFor(argv.chexmask, id) : null;
      const untrained = argv.allowUntrained === true;
      const segmenter = argv.segmenter
        ? await openSegmenter(argv.segmenter, {
            device: argv.device,
            untrained,
            ...(argv.bf16 ? { bf16: true } : {}),
          })
        : null;
      const p = await MaskingPredictor.load({
        segmenter,
        untrained,
        modelDir: argv.model,
        checkpoint: argv.checkpoint ?? null,
        ...(argv.kind ? { kind: argv.kind } : {}),
        device: argv.device,
        ...(argv.bf16 ? { bf16: true } : {}),
        imageLimits,
      });
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
