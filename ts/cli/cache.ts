/** `cxrmask cache`: index + CheXmask → decode-once preprocessed cache (original and masked from one decode). */

import { resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { DEFAULT_MIN_DICE, joinChexmask } from '../data/chexmask.js';
import { indexLabelPolicy, indexRowFilters, readIndex } from '../data/mimic.js';
import { buildCache, rebuildNotes } from '../images/cache-build.js';

import { type ImageLimitArgv, imageLimitOptions, imageLimitsFrom } from './options.js';
import { progress } from './progress.js';
import { runCommand } from './run-command.js';
import { installStop } from './signals.js';

export interface CacheArgv extends ImageLimitArgv {
  index: string;
  root: string;
  chexmask: string;
  out: string;
  minDice: number;
  preset: 'biomedclip' | 'paper';
  size?: number;
  thickness: number;
  source: 'landmarks' | 'rle';
  fastShrink: boolean;
  requireMask: boolean;
  concurrency?: number;
  shardSize: number;
  progress: boolean;
}

const command: CommandModule<object, CacheArgv> = {
  command: 'cache',
  describe: 'Build the preprocessed image cache (224² uint8 planes + contour maps, sharded, resumable)',
  builder: (y: Argv<object>) =>
    imageLimitOptions(y)
      .option('index', {
        type: 'string',
        demandOption: true,
        describe: 'index.jsonl (or its folder) from `cxrmask index`',
      })
      .option('root', {
        type: 'string',
        demandOption: true,
        describe: 'MIMIC-CXR-JPG root the index paths are relative to',
      })
      .option('chexmask', {
        type: 'string',
        demandOption: true,
        describe: 'CheXmask CSV (e.g. OriginalResolution/MIMIC-CXR-JPG.csv)',
      })
      .option('out', {
        type: 'string',
        demandOption: true,
        describe: 'cache parent folder (the cache goes to OUT/<settings key>/)',
      })
      .option('min-dice', { type: 'number', default: DEFAULT_MIN_DICE, describe: 'minimum Dice RCA (Mean)' })
      .option('preset', {
        choices: ['biomedclip', 'paper'] as const,
        default: 'biomedclip' as const,
        describe: 'preprocessing preset',
      })
      .option('size', { type: 'number', describe: 'output size (default 224)' })
      .option('thickness', { type: 'number', default: 2, describe: 'contour thickness in output pixels' })
      .option('source', {
        choices: ['landmarks', 'rle'] as const,
        default: 'landmarks' as const,
        describe: 'contours from landmark polygons or RLE masks',
      })
      .option('fast-shrink', {
        type: 'boolean',
        default: false,
        describe: 'JPEG shrink-on-load (faster, slightly further from PIL)',
      })
      .option('require-mask', {
        type: 'boolean',
        default: true,
        describe: 'skip images without a usable CheXmask row',
      })
      .option('concurrency', { type: 'number', describe: 'images decoded in parallel (default: CPU count)' })
      .option('shard-size', { type: 'number', default: 1024, describe: 'images per shard' })
      .option('progress', {
        type: 'boolean',
        default: true,
        describe: 'progress bar',
      }) as unknown as Argv<CacheArgv>,
  handler: (argv: ArgumentsCamelCase<CacheArgv>) =>
    runCommand(async () => {
      const imageLimits = imageLimitsFrom(argv);
      const entries = await readIndex(argv.index);
      process.stderr.write(`[cache] ${entries.length} index entries; joining ${argv.chexmask}\n`);
      // The join reads only the cells this contour source needs; progress is in MB of the file.
      const joinBar = progress('CheXmask MB', argv.progress);
      const { rows, summary: join } = await joinChexmask(
        argv.chexmask,
        entries.map((e) => e.dicomId),
        {
          minDice: argv.minDice,
          source: argv.source,
          // rows say where they lie and their RLE cells are read per image: holding them all took
          // ≈ 55 KB per row (≈ 13 GB for MIMIC-CXR-JPG), past V8's heap
          locateRle: argv.source === 'rle',
          onBytes: (bytes, total) => joinBar.update(Math.round(bytes / 1e6), Math.round(total / 1e6)),
        },
      );
      joinBar.stop();
      process.stderr.write(
        `[cache] CheXmask: ${join.kept} rows kept, ${join.missing} ids absent, refused ${JSON.stringify(join.refused.counts)}\n`,
      );
      // first Ctrl-C: the build stops at its next image, keeping the finished shards (no temp left)
      const signal = installStop(
        () => 'The finished shards are kept: run the same command again to continue.',
      );
      const bar = progress('cache', argv.progress);
      const s = await buildCache({
        entries,
        root: argv.root,
        chexmask: rows,
        // recorded in cache.json: `segmenter eval` reads CheXmask's Dice RCA from it (absolute: it may
        // run from another folder)
        chexmaskCsv: resolve(argv.chexmask),
        // part of the cache key: another --min-dice or label policy builds another cache folder
        minDice: argv.minDice,
        labelPolicy: indexLabelPolicy(argv.index),
        // recorded: a run compares its data.views / requirePositive / dataset with them
        rows: indexRowFilters(argv.index),
        out: argv.out,
        preprocess: {
          preset: argv.preset,
          fastShrinkOnLoad: argv.fastShrink,
          ...(argv.size !== undefined ? { size: argv.size } : {}),
        },
        overlay: { thickness: argv.thickness, source: argv.source },
        requireMask: argv.requireMask,
        concurrency: argv.concurrency,
        shardSize: argv.shardSize,
        imageLimits,
        onProgress: bar.update,
        signal,
      }).finally(() => {
        bar.stop();
        signal.release();
      });
      // a rebuild into the same --out: say which earlier shards were redone and which failed images recovered
      for (const line of rebuildNotes(s)) process.stderr.write(`[cache] ${line}\n`);
      process.stdout.write(`${JSON.stringify({ ...s, chexmask: join }, null, 2)}\n`);
    }),
};
export default command;
