/**
 * `cxrmask explain`: one image (+ its CheXmask row), a model (zero-shot export, or a JFT/LP cell
 * checkpoint over it: the kind it records; or the cell itself, as predict takes it), a finding and a
 * method → a PNG and the numbers as JSON. A cell's images are made as its run's cache made them.
 * The work is ts/explain/image.ts; this module parses the options and writes the files.
 */

import { existsSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { ConfigError, UsageError } from '../common/errors.js';
import { toJson, writeFilesAtomic } from '../common/io.js';
import { FINDINGS } from '../common/labels.js';
import { chexmaskRowFor } from '../data/chexmask.js';
import { explainImage } from '../explain/image.js';
import {
  ATTRIBUTION_METHOD_NAMES,
  ATTRIBUTION_METHODS,
  type AttributionMethod,
} from '../model/attribution.js';
import { ATTRIBUTION_DEFAULTS, ATTRIBUTION_LIMITS, EXPLAIN_CLI_DEFAULTS } from '../model/defaults.js';
import { resolveModelSource } from '../service/model-source.js';
import { COMMAND_TEXT } from './commands.js';
import {
  checkCount,
  checkOutputFile,
  type ImageLimitArgv,
  imageLimitOptions,
  imageLimitsFrom,
} from './options.js';
import { runCommand } from './run-command.js';

export interface ExplainArgv extends ImageLimitArgv {
  image: string;
  chexmask?: string;
  id?: string;
  model: string;
  checkpoint?: string;
  finding: string;
  method: AttributionMethod;
  steps: number;
  samples: number;
  seed: number;
  out: string;
  json?: string;
  device: string;
  preset?: 'biomedclip' | 'paper';
}

/** The library's ceilings on steps and samples (ATTRIBUTION_LIMITS), checked here as flags. */
export const MAX_EXPLAIN_STEPS = ATTRIBUTION_LIMITS.steps;
export const MAX_EXPLAIN_SAMPLES = ATTRIBUTION_LIMITS.samples;

function findingIndex(s: string): number {
  const k = FINDINGS.findIndex((f) => f.toLowerCase() === s.toLowerCase());
  if (k >= 0) return k;
  const n = Number(s);
  if (Number.isInteger(n) && n >= 0 && n < FINDINGS.length) return n;
  throw new ConfigError(
    `--finding must be one of ${FINDINGS.join(', ')} (or 0-${FINDINGS.length - 1}), got "${s}"`,
  );
}

/**
 * The two output paths, checked before any work: `--out` is the PNG (a name ending in .png, so that
 * `--out map.json` does not write a PNG under a JSON name), `--json` (default: `--out` with .json)
 * another file. Returns the JSON path.
 */
function explainOutputs(out: string, json: string | undefined): string {
  checkOutputFile('out', out);
  if (extname(out).toLowerCase() !== '.png')
    throw new UsageError(
      `--out ${out}: the heat map is written as a PNG; give a path ending in .png (the numbers go to --json, by default the same name ending in .json)`,
    );
  const numbers = json ?? `${out.slice(0, -extname(out).length)}.json`;
  checkOutputFile('json', numbers);
  if (resolve(numbers) === resolve(out) || sameFile(numbers, out))
    throw new UsageError(
      `--out ${out} and --json ${numbers} name the same file: the numbers would replace the PNG; give --json another path`,
    );
  return numbers;
}

/** Both exist and are one file (a link to the other, a hard link). */
function sameFile(a: string, b: string): boolean {
  if (!existsSync(a) || !existsSync(b)) return false;
  const x = statSync(a);
  const y = statSync(b);
  return x.dev === y.dev && x.ino === y.ino;
}

const command: CommandModule<object, ExplainArgv> = {
  ...COMMAND_TEXT.explain,
  builder: (y: Argv<object>) =>
    imageLimitOptions(y)
      .option('image', { type: 'string', demandOption: true, describe: 'JPEG/PNG' })
      .option('chexmask', { type: 'string', describe: 'CheXmask CSV holding the row (for the masked input)' })
      .option('id', { type: 'string', describe: 'dicom_id of the row' })
      .option('model', {
        type: 'string',
        demandOption: true,
        describe:
          'exported model folder (clip.pt + model.json), or a trained cell runs/<run>/cells/<cell> (or its best.ckpt)',
      })
      .option('checkpoint', {
        type: 'string',
        describe:
          'a fine-tuned or linear-probe checkpoint over --model (e.g. cells/jft-masked-s0/best.ckpt); without it: zero-shot',
      })
      .option('finding', { type: 'string', demandOption: true, describe: `one of ${FINDINGS.join(', ')}` })
      .option('method', {
        choices: ATTRIBUTION_METHODS,
        default: EXPLAIN_CLI_DEFAULTS.method,
        describe: `attribution method: ${ATTRIBUTION_METHODS.map((m) => `${m} = ${ATTRIBUTION_METHOD_NAMES[m]}`).join(', ')}`,
      })
      .option('steps', {
        type: 'number',
        default: ATTRIBUTION_DEFAULTS.steps,
        describe: `Integrated Gradients steps (ig; at most ${MAX_EXPLAIN_STEPS})`,
      })
      .option('samples', {
        type: 'number',
        default: ATTRIBUTION_DEFAULTS.samples,
        describe: `SmoothGrad noisy samples (smoothgrad; at most ${MAX_EXPLAIN_SAMPLES})`,
      })
      .option('seed', {
        type: 'number',
        default: ATTRIBUTION_DEFAULTS.seed,
        describe: 'SmoothGrad noise seed',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'output PNG (a path ending in .png)' })
      .option('json', {
        type: 'string',
        describe: 'numbers as JSON (default: --out with .json for .png; must differ from --out)',
      })
      .option('device', { type: 'string', default: 'auto', describe: 'cpu | cuda | cuda:N | auto' })
      .option('preset', {
        choices: ['biomedclip', 'paper'] as const,
        describe:
          "resize (biomedclip: shortest side + centre crop; paper: squash); size, mean and std are the model folder's. Default: a run's cell's own preprocessing (another preset is refused), else biomedclip",
      }) as unknown as Argv<ExplainArgv>,
  handler: (argv: ArgumentsCamelCase<ExplainArgv>) =>
    runCommand(async () => {
      const json = explainOutputs(argv.out, argv.json);
      checkCount('steps', argv.steps, 1, MAX_EXPLAIN_STEPS);
      checkCount('samples', argv.samples, 1, MAX_EXPLAIN_SAMPLES);
      const finding = findingIndex(argv.finding);
      const limits = imageLimitsFrom(argv);
      if ((argv.chexmask === undefined) !== (argv.id === undefined))
        throw new ConfigError('--chexmask and --id go together');
      const source = resolveModelSource(argv.model, argv.checkpoint ?? null);
      const row = argv.chexmask && argv.id ? await chexmaskRowFor(argv.chexmask, argv.id) : null;
      const { png, numbers } = await explainImage({
        image: argv.image,
        row,
        ...(source.preprocess ? { preprocess: source.preprocess } : {}),
        ...(source.overlay ? { overlay: source.overlay } : {}),
        model: { modelDir: source.modelDir, checkpoint: source.checkpoint, device: argv.device },
        finding,
        attribution: { method: argv.method, steps: argv.steps, samples: argv.samples, seed: argv.seed },
        preset: argv.preset,
        limits,
      });
      // as a pair: a failed write of either (a full disk) replaces neither, so the map and the numbers
      // on disk always come from the same call
      const record = { image: argv.image, dicomId: argv.id ?? null, ...numbers };
      writeFilesAtomic(
        [
          { path: argv.out, data: png },
          { path: json, data: `${toJson(record)}\n` },
        ],
        { links: 'follow' },
      );
      process.stdout.write(`${argv.out}, ${json}\n`);
    }),
};
export default command;
