/**
 * `cxrmask explain`: one image (+ its CheXmask row), a model (zero-shot export, or a JFT/LP cell
 * checkpoint over it), a finding and a method → a PNG (image | map on the original input | map on the masked
 * input, one colour scale) and the numbers as JSON (scores, share of attribution mass in lungs ∪ heart).
 */

import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { ConfigError, DataError } from '../common/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../common/io.js';
import { FINDINGS } from '../common/labels.js';
import { joinChexmask } from '../data/chexmask.js';
import { DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT } from '../experiment/config.js';
import { linearHead } from '../experiment/grid-attribution.js';
import { fillPrompt } from '../experiment/zeroshot.js';
import { attributionFigure, sharedScale } from '../explain/figure.js';
import { massInside } from '../explain/measures.js';
import { preprocess } from '../images/preprocess.js';
import { tensorToRgb } from '../images/tensor-rgb.js';
import { regionMasksOnGrid } from '../masks/overlay.js';
import {
  ATTRIBUTION_METHOD_NAMES,
  ATTRIBUTION_METHODS,
  type Attribution,
  type AttributionMethod,
} from '../model/attribution.js';
import { Classifier } from '../model/classifier.js';
import { ClipModel } from '../model/clip.js';
import { loadTokenizer } from '../model/tokenizer.js';
import type { DeviceSpec } from '../native.js';

import { checkOutputFile, type ImageLimitArgv, imageLimitOptions, imageLimitsFrom } from './options.js';
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
  preset: 'biomedclip' | 'paper';
}

function findingIndex(s: string): number {
  const k = FINDINGS.findIndex((f) => f.toLowerCase() === s.toLowerCase());
  if (k >= 0) return k;
  const n = Number(s);
  if (Number.isInteger(n) && n >= 0 && n < FINDINGS.length) return n;
  throw new ConfigError(
    `--finding must be one of ${FINDINGS.join(', ')} (or 0-${FINDINGS.length - 1}), got "${s}"`,
  );
}

const command: CommandModule<object, ExplainArgv> = {
  command: 'explain',
  describe: 'Attribution map of one finding for an image, on the original and the masked input (PNG + JSON)',
  builder: (y: Argv<object>) =>
    imageLimitOptions(y)
      .option('image', { type: 'string', demandOption: true, describe: 'JPEG/PNG' })
      .option('chexmask', { type: 'string', describe: 'CheXmask CSV holding the row (for the masked input)' })
      .option('id', { type: 'string', describe: 'dicom_id of the row' })
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'exported model folder (clip.pt + model.json)',
      })
      .option('checkpoint', {
        type: 'string',
        describe:
          'a JFT classifier checkpoint over --model (e.g. cells/jft-masked-s0/best.ckpt); without it: zero-shot',
      })
      .option('finding', { type: 'string', demandOption: true, describe: `one of ${FINDINGS.join(', ')}` })
      .option('method', {
        choices: ATTRIBUTION_METHODS,
        default: 'ig' as const,
        describe: `attribution method: ${ATTRIBUTION_METHODS.map((m) => `${m} = ${ATTRIBUTION_METHOD_NAMES[m]}`).join(', ')}`,
      })
      .option('steps', { type: 'number', default: 32, describe: 'Integrated Gradients steps (ig)' })
      .option('samples', { type: 'number', default: 16, describe: 'SmoothGrad noisy samples (smoothgrad)' })
      .option('seed', { type: 'number', default: 0, describe: 'SmoothGrad noise seed' })
      .option('out', { type: 'string', demandOption: true, describe: 'output PNG' })
      .option('json', { type: 'string', describe: 'numbers as JSON (default: <out>.json)' })
      .option('device', { type: 'string', default: 'auto', describe: 'cpu | cuda | cuda:N | auto' })
      .option('preset', {
        choices: ['biomedclip', 'paper'] as const,
        default: 'biomedclip' as const,
        describe: 'preprocessing',
      }) as unknown as Argv<ExplainArgv>,
  handler: (argv: ArgumentsCamelCase<ExplainArgv>) =>
    runCommand(async () => {
      checkOutputFile('out', argv.out);
      checkOutputFile('json', argv.json);
      const k = findingIndex(argv.finding);
      const limits = imageLimitsFrom(argv);
      if ((argv.chexmask === undefined) !== (argv.id === undefined))
        throw new ConfigError('--chexmask and --id go together');
      let row = null;
      if (argv.chexmask && argv.id) {
        const { rows, summary } = await joinChexmask(argv.chexmask, [argv.id], { stopEarly: true });
        row = rows.get(argv.id) ?? null;
        if (!row) {
          const why = summary.missing
            ? 'no row with this dicom_id'
            : (Object.values(summary.refused.examples).flat()[0] ?? 'row refused');
          throw new DataError('no-chexmask', why, { file: argv.chexmask, id: argv.id });
        }
      }
      const pp = await preprocess(argv.image, row, { preprocess: { preset: argv.preset }, limits });
      const size = pp.geometry.outW;
      const hw = 3 * size * size;
      const n = pp.masked ? 2 : 1;
      const x = new Float32Array(n * hw);
      x.set(pp.original, 0);
      if (pp.masked) x.set(pp.masked, hw);
      const options = { method: argv.method, steps: argv.steps, samples: argv.samples, seed: argv.seed };
      const device = argv.device as DeviceSpec;
      let result!: Attribution;
      let explained: string;
      if (argv.checkpoint) {
        // A JFT checkpoint (image tower + head) or a LP one (head over the tower's embedding).
        const clf = await Classifier.create({ modelDir: argv.model, device });
        let jft = true;
        try {
          await clf.load(argv.checkpoint).catch(() => {
            jft = false;
          });
          if (jft) result = await clf.attribute(x, n, k, options);
        } finally {
          await clf.dispose();
        }
        if (!jft) {
          const clip = await ClipModel.load(argv.model, { device });
          try {
            const head = await linearHead(argv.checkpoint, clip.embedDim, clip.device).catch((e: Error) => {
              throw new ConfigError(
                `${argv.checkpoint} is neither a JFT nor a linear-probe checkpoint over ${argv.model}: ${e.message}`,
              );
            });
            const d = clip.embedDim;
            result = await clip.attributeLinear(
              x,
              n,
              head.weight.subarray(k * d, (k + 1) * d),
              head.bias[k]!,
              options,
            );
          } finally {
            await clip.dispose();
          }
        }
        explained = `logit of ${FINDINGS[k]} (${jft ? 'fine-tuned' : 'linear-probe'} classifier ${argv.checkpoint})`;
      } else {
        const clip = await ClipModel.load(argv.model, { device });
        try {
          const prompts = [
            fillPrompt(DEFAULT_PROMPT, FINDINGS[k]!),
            fillPrompt(DEFAULT_NEGATIVE_PROMPT, FINDINGS[k]!),
          ];
          const text = await clip.encodeText(loadTokenizer(argv.model).encode(prompts), 2);
          result = await clip.attribute(x, n, text, options);
          explained = `zero-shot logit s·(cos(img, "${prompts[0]}") − cos(img, "${prompts[1]}"))`;
        } finally {
          await clip.dispose();
        }
      }
      const maps = Array.from({ length: n }, (_, i) =>
        result.map.subarray(i * size * size, (i + 1) * size * size),
      );
      let anatomy: Uint8Array | null = null;
      if (row) {
        const r = regionMasksOnGrid(row, pp.geometry);
        anatomy = new Uint8Array(size * size);
        for (const m of Object.values(r)) if (m) for (let p = 0; p < m.length; p++) anatomy[p]! |= m[p]!;
      }
      const scale = sharedScale(maps);
      const panels = [
        { rgb: tensorToRgb(pp.original, size), map: null, title: 'image' },
        {
          rgb: tensorToRgb(pp.original, size),
          map: maps[0]!,
          title: `original: ${result.score[0]!.toPrecision(3)}`,
        },
        ...(pp.masked
          ? [
              {
                rgb: tensorToRgb(pp.masked, size),
                map: maps[1]!,
                title: `masked: ${result.score[1]!.toPrecision(3)}`,
              },
            ]
          : []),
      ];
      writeFileAtomic(argv.out, await attributionFigure(panels, size, scale));
      const numbers = {
        image: argv.image,
        dicomId: argv.id ?? null,
        finding: FINDINGS[k],
        method: argv.method,
        explained,
        map: 'per pixel: sum over channels of |attribution|',
        inputs: maps.map((m, i) => ({
          input: i === 0 ? 'original' : 'masked',
          score: result.score[i],
          ...(result.baselineScore ? { baselineScore: result.baselineScore[i] } : {}),
          massInLungsHeart: anatomy ? massInside(m, anatomy) : null,
        })),
        anatomyShare: anatomy ? anatomy.reduce((a, v) => a + v, 0) / anatomy.length : null,
      };
      const json = argv.json ?? argv.out.replace(/\.[^./]+$/, '') + '.json';
      writeJsonAtomic(json, numbers);
      process.stdout.write(`${argv.out}, ${json}\n`);
    }),
};
export default command;
