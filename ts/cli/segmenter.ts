/** `cxrmask segmenter train|eval`: the lung/heart segmenter trained on and measured against CheXmask. */
import { join, resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { sha256FileAsync } from '../common/hash.js';
import { writeJsonAtomic } from '../common/io.js';
import type { Split } from '../data/mimic.js';
import { openCache } from '../images/cache.js';
import { learningRate } from '../model/options.js';
import { Segmenter } from '../model/segmenter.js';
import type { DeviceSpec } from '../native.js';
import { evaluateSegmenter, formatSegEval } from '../segment/eval.js';
import { trainSegmenter } from '../segment/train.js';
import { COMMAND_TEXT } from './commands.js';
import { checkCount, checkFlag } from './options.js';
import { progress } from './progress.js';
import { runCommand } from './run-command.js';
import { installStop } from './signals.js';

export interface SegmenterArgv {
  action: 'train' | 'eval';
  cache: string;
  model: string;
  out: string;
  weights?: string;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  device: DeviceSpec;
  bf16: boolean;
  split: Split;
  chexmask?: string;
  maxImages?: number;
  progress: boolean;
}

const command: CommandModule<object, SegmenterArgv> = {
  ...COMMAND_TEXT.segmenter,
  builder: (y: Argv<object>) =>
    y
      .positional('action', { choices: ['train', 'eval'] as const, demandOption: true })
      .option('cache', { type: 'string', demandOption: true, describe: 'image cache folder (cxrmask cache)' })
      .option('model', {
        type: 'string',
        default: 'models/seg-tiny',
        describe: 'exported segmenter folder (tools/segmenter_export.py)',
      })
      .option('out', {
        type: 'string',
        demandOption: true,
        describe: 'run folder: best.pt, state-<epoch>.pt, train.json, eval.json',
      })
      .option('weights', { type: 'string', describe: 'eval: weights to load (default <out>/best.pt)' })
      .option('epochs', { type: 'number', default: 10 })
      .option('batch-size', { type: 'number', default: 16 })
      .option('lr', { type: 'number', default: 3e-3, describe: 'AdamW learning rate' })
      .option('seed', { type: 'number', default: 0, describe: 'shuffling seed' })
      .option('device', { choices: ['auto', 'cpu', 'cuda'] as const, default: 'auto' as const })
      .option('bf16', { type: 'boolean', default: true, describe: 'bf16 autocast where supported (CUDA)' })
      .option('split', {
        choices: ['train', 'validate', 'test'] as const,
        default: 'test' as const,
        describe: 'eval: split to measure',
      })
      .option('chexmask', { type: 'string', describe: "CheXmask CSV for Dice RCA (default: the cache's)" })
      .option('max-images', { type: 'number', describe: 'eval: first N images of the split' })
      .option('progress', { type: 'boolean', default: true })
      .example('$0 segmenter train --cache data/cache --out runs/seg --epochs 10', '')
      .example('$0 segmenter eval --cache data/cache --out runs/seg', '') as unknown as Argv<SegmenterArgv>,
  handler: (argv: ArgumentsCamelCase<SegmenterArgv>) =>
    runCommand(async () => {
      checkCount('epochs', argv.epochs);
      checkCount('batch-size', argv.batchSize);
      checkCount('seed', argv.seed, 0);
      checkCount('max-images', argv.maxImages);
      checkFlag('lr', learningRate, argv.lr);
      const cache = openCache(argv.cache);
      const seg = await Segmenter.load(argv.model, { device: argv.device, lr: argv.lr, bf16: argv.bf16 });
      try {
        if (argv.action === 'train') {
          const signal = installStop(() => `Resume with the same command (${argv.out}/train.json).`);
          const bar = progress('segmenter', argv.progress);
          try {
            await trainSegmenter({
              cache,
              segmenter: seg,
              out: argv.out,
              modelDir: argv.model,
              epochs: argv.epochs,
              batchSize: argv.batchSize,
              seed: argv.seed,
              signal,
              fingerprint: {
                cache: cache.digest,
                model: seg.meta.preset,
                modelParams: seg.meta.params ?? null,
                lr: argv.lr,
                batchSize: argv.batchSize,
                seed: argv.seed,
              },
              onBatch: (done, total) => bar.update(done, total),
              onEpoch: (e) => {
                bar.stop();
                process.stderr.write(
                  `[segmenter] epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, val Dice R ${e.val.rightLung.toFixed(3)} L ${e.val.leftLung.toFixed(3)} heart ${e.val.heart.toFixed(3)} (${e.seconds.toFixed(0)} s)\n`,
                );
              },
            });
          } finally {
            signal.release();
          }
          bar.stop();
        }
        const weights = resolve(
          argv.action === 'eval' && argv.weights ? argv.weights : join(argv.out, 'best.pt'),
        );
        await seg.load(weights);
        const report = await evaluateSegmenter(seg, cache, {
          split: argv.action === 'train' ? 'test' : argv.split,
          batchSize: argv.batchSize,
          chexmaskCsv: argv.chexmask ?? null,
          ...(argv.maxImages !== undefined ? { maxImages: argv.maxImages } : {}),
        });
        // the numbers belong to these weights: eval --weights X overwrites eval.json in place
        writeJsonAtomic(join(argv.out, 'eval.json'), {
          ...report,
          cache: cache.digest,
          model: argv.model,
          weights,
          weightsSha256: (await sha256FileAsync(weights)).slice(0, 16),
        });
        process.stdout.write(`${formatSegEval(report)}\n`);
      } finally {
        await seg.dispose();
        cache.close();
      }
    }),
};
export default command;
