/**
 * `cxrmask demo`: fresh clone → synthetic MIMIC-CXR-JPG/CheXmask data → image cache → the whole grid
 * with the exported `tiny` model → Table 2 on stdout. Sizes come from DEMO (ts/experiment/config.ts).
 */

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { DataError } from '../common/errors.js';
import { readJson, writeJsonAtomic } from '../common/io.js';
import { CHEXMASK_FILE, DATASETS, type DatasetName } from '../data/datasets/names.js';
import { prepareData } from '../experiment/backend-real.js';
import { DEMO, demoConfig } from '../experiment/config.js';
import { readModelMeta } from '../model/meta.js';
import { checkSynthTargets, SYNTH_MARKER } from '../synth/ownership.js';
import { COMMAND_TEXT } from './commands.js';
import { parseSeeds } from './config-merge.js';
import { demoSegmenter } from './demo-segmenter.js';
import { executeRun } from './run.js';
import { runCommand } from './run-command.js';

export interface DemoArgv {
  dataset: DatasetName;
  data: string;
  runsDir: string;
  model: string;
  images: number;
  seeds?: string;
  device?: string;
  progress?: boolean;
  segmenter: boolean;
}

/** Hash of the synthetic generator's code, so a changed generator re-synthesizes the demo data. */
export function synthFingerprint(): string {
  const dir = fileURLToPath(new URL('../synth/', import.meta.url));
  const h = createHash('sha256');
  try {
    for (const f of readdirSync(dir).sort())
      if (/\.(ts|js)$/.test(f)) h.update(f).update(readFileSync(join(dir, f)));
  } catch {
    return 'unknown';
  }
  return h.digest('hex').slice(0, 16);
}

/** Synthesize the demo data set unless an identical one is already there. */
export async function ensureDemoData(
  dir: string,
  n: number,
  seed: number,
  dataset: DatasetName = 'mimic',
): Promise<{ mimicRoot: string; chexmaskCsv: string; reused: boolean }> {
  const stamp = join(dir, 'synth.json');
  const want = {
    n,
    seed,
    width: DEMO.imageWidth,
    height: DEMO.imageHeight,
    generator: synthFingerprint(),
    ...(dataset === 'mimic' ? {} : { dataset }),
  };
  const have = readStamp(stamp);
  if (have && JSON.stringify(have.params) === JSON.stringify(want) && existsSync(have.chexmaskCsv))
    return { mimicRoot: have.mimicRoot, chexmaskCsv: have.chexmaskCsv, reused: true };
  // Only a marker inside the tree proves it the demo's: its stamp beside the tree outlives a tree
  // someone replaced. Checked before the caches go, so a refusal deletes nothing.
  await checkSynthTargets(
    dataset,
    join(dir, dataset),
    join(dir, 'chexmask', CHEXMASK_FILE[dataset]),
    `Choose another --data folder, or remove those paths if they hold nothing of yours (a demo folder from a cxrmask before ${SYNTH_MARKER} has no marker)`,
  );
  for (const f of existsSync(dir) ? readdirSync(dir) : [])
    if (f.startsWith('cache-')) rmSync(join(dir, f), { recursive: true, force: true });
  const { synthesize } = await import('../synth/synthesize.js');
  process.stderr.write(`[demo] synthesizing ${n} images into ${dir}\n`);
  const s = await synthesize({ out: dir, dataset, n, seed, width: want.width, height: want.height });
  writeJsonAtomic(stamp, {
    params: want,
    mimicRoot: s.mimicRoot,
    chexmaskCsv: s.chexmaskCsv,
    perSplit: s.perSplit,
  });
  return { mimicRoot: s.mimicRoot, chexmaskCsv: s.chexmaskCsv, reused: false };
}

/** What the demo's stamp records of the data it synthesized. */
interface DemoStamp {
  params: unknown;
  mimicRoot: string;
  chexmaskCsv: string;
}

/**
 * The demo's stamp (`<data>/synth.json`); null when there is none, or when it records no data (made
 * by another version: the data are synthesized again, as for other parameters).
 * @throws {DataError} it is not a regular file (a FIFO would block the read) or not JSON, naming it
 *   and how to start afresh.
 */
function readStamp(stamp: string): DemoStamp | null {
  let have: Partial<DemoStamp> | null;
  try {
    have = readJson<Partial<DemoStamp>>(stamp);
  } catch (e) {
    if (e instanceof DataError)
      e.message = `${e.message} (the demo's stamp: delete it to synthesize the data again)`;
    throw e;
  }
  const usable =
    typeof have === 'object' &&
    have !== null &&
    typeof have.mimicRoot === 'string' &&
    typeof have.chexmaskCsv === 'string';
  return usable ? (have as DemoStamp) : null;
}

export const demoCommand: CommandModule<object, DemoArgv> = {
  ...COMMAND_TEXT.demo,
  builder: (y: Argv<object>) =>
    y
      .option('dataset', {
        choices: DATASETS,
        default: 'mimic' as const,
        describe: 'layout of the synthetic data (its tables, image files and CheXmask file; docs/data.md)',
      })
      .option('data', {
        type: 'string',
        default: '.cache/demo-data',
        describe: 'where the synthetic data set and its cache go',
      })
      .option('runs-dir', { type: 'string', default: 'runs', describe: 'parent folder of run folders' })
      .option('model', { type: 'string', default: 'models/tiny', describe: 'exported model folder' })
      .option('images', { type: 'number', default: DEMO.images, describe: 'number of synthetic images' })
      .option('seeds', {
        type: 'string',
        describe: `comma-separated seeds (default ${DEMO.seeds.join(',')})`,
      })
      .option('device', { choices: ['auto', 'cpu', 'cuda'], default: 'auto', describe: 'where to run' })
      .option('progress', {
        type: 'boolean',
        default: true,
        describe: 'progress bars (--no-progress: plain log lines)',
      })
      .option('segmenter', {
        type: 'boolean',
        default: true,
        describe: `train the tiny segmenter (${DEMO.segmenter.model}) and add the predicted-mask column (--no-segmenter: CheXmask masks only)`,
      })
      .example('$0 demo', 'the README demo (about 3.5 minutes on 2 idle CPU cores)')
      .example(
        '$0 demo --dataset nih14 --data .cache/demo-nih',
        'the same on NIH ChestX-ray14-shaped data',
      ) as unknown as Argv<DemoArgv>,
  handler: async (argv: ArgumentsCamelCase<DemoArgv>) => {
    let dir: string | null = null;
    await runCommand(
      async () => {
        const t0 = performance.now();
        const seeds = parseSeeds(argv.seeds);
        readModelMeta(argv.model); // clear error before any work if the model is missing
        const data = await ensureDemoData(argv.data, argv.images, DEMO.synthSeed, argv.dataset);
        const size = readModelMeta(argv.model).imageSize ?? 224;
        const overrides = {
          runsDir: argv.runsDir,
          model: { dir: argv.model, device: argv.device },
          data: {
            dataset: argv.dataset,
            cache: join(argv.data, `cache-${size}`),
            root: data.mimicRoot,
            chexmask: data.chexmaskCsv,
          },
          ...(seeds ? { seeds } : {}),
        };
        let config = demoConfig(argv.data, overrides);
        if (argv.segmenter) {
          // The cache first (the segmenter trains on it), then the segmenter, then the grid with its masks.
          const prepared = await prepareData(config);
          const cacheDir = (prepared['cache'] as { dir: string }).dir;
          const seg = await demoSegmenter(cacheDir, argv.data, {
            device: argv.device ?? 'auto',
            log: (line) => process.stderr.write(`${line}\n`),
          });
          process.stderr.write(`[demo] segmenter ready in ${seg.seconds.toFixed(0)} s\n`);
          config = demoConfig(argv.data, { ...overrides, segmenter: { dir: seg.dir, weights: seg.weights } });
        }
        await executeRun(config, { progress: argv.progress, onRunDir: (d) => (dir = d) });
        process.stdout.write(`Demo wall time: ${((performance.now() - t0) / 60000).toFixed(1)} min\n`);
      },
      { resume: () => dir },
    );
  },
};

export default demoCommand;
