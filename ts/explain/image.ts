/**
 * One image explained (`cxrmask explain`): the attribution map of one finding's logit on the image as
 * given and, with its CheXmask row, on the masked input; as a figure (image | map on the original |
 * map on the masked input, one colour scale) and as numbers (scores, share of attribution mass in
 * lungs ∪ heart). The model is any kind openModel opens.
 */
import { ConfigError } from '../common/errors.js';
import { FINDINGS } from '../common/labels.js';
import type { ChexmaskRow } from '../data/chexmask.js';
import type { EncodedImage, ImageLimits } from '../images/input.js';
import {
  type PreprocessOptions,
  preprocess,
  preprocessConflicts,
  resolvePreprocess,
} from '../images/preprocess.js';
import { tensorToRgb } from '../images/tensor-rgb.js';
import type { Geometry } from '../masks/geometry.js';
import { type ContourOptions, regionMasksOnGrid } from '../masks/overlay.js';
import type { Attribution, AttributionOptions } from '../model/attribution.js';
import { preprocessFor } from '../model/backend-real.js';
import { ATTRIBUTION_DEFAULTS } from '../model/defaults.js';
import { readModelMeta } from '../model/meta.js';
import { type OpenModelOptions, openModel } from '../model/open.js';
import { attributionFigure, sharedScale } from './figure.js';
import { massInside } from './measures.js';

export interface ExplainImageOptions {
  /** JPEG/PNG path or bytes. */
  image: EncodedImage;
  /** The image's CheXmask row: adds the masked input and the mass in lungs ∪ heart; null: original only. */
  row: ChexmaskRow | null;
  /** The model to explain (opened after the image is read, disposed before returning). */
  model: OpenModelOptions;
  /** Index into FINDINGS. */
  finding: number;
  attribution: AttributionOptions;
  /**
   * How the image is resized (shortest side + centre crop, or squashed). Without `preprocess`, size,
   * mean and std are model.json's; with it, a preset other than its own is refused (ConfigError).
   */
  preset?: 'biomedclip' | 'paper';
  /**
   * The preprocessing the model was trained with: a run's cell's, as resolveModelSource returns it
   * (ts/service/model-source.ts). Default: the `preset` with model.json's size, mean and std.
   */
  preprocess?: PreprocessOptions;
  /** Contour settings of the masked input (a run's cell's, as resolveModelSource returns them). */
  overlay?: ContourOptions;
  limits?: ImageLimits;
}

/** The numbers of one explanation (`cxrmask explain --json`). */
export interface ExplanationNumbers {
  finding: string;
  method: string;
  explained: string;
  map: string;
  inputs: {
    input: 'original' | 'masked';
    score: number | undefined;
    baselineScore?: number | undefined;
    massInLungsHeart: number | null;
  }[];
  anatomyShare: number | null;
}

export interface ImageExplanation {
  /** The figure as PNG bytes. */
  png: Buffer;
  numbers: ExplanationNumbers;
}

/**
 * Explains finding `o.finding` of one image: reads and preprocesses the image (and, with its CheXmask
 * row, the masked input) with the model's model.json size, mean and std, opens the model, computes the attribution map of the finding's logit on
 * each input in one call, and disposes of the model. Returns the figure as PNG bytes and the numbers:
 * the score of each input (IG: and its baseline score) and, with a row, the share of attribution mass
 * inside lungs ∪ heart and the share of the image those regions cover.
 *
 * @throws {DataError} (rejects) an image that cannot be read or decoded within `o.limits`.
 * @throws {ConfigError|DataError|NativeError} (rejects) a model that cannot be opened (see openModel).
 * @throws {RangeError} (rejects) attribution options out of range, or a finding outside FINDINGS.
 */
export async function explainImage(o: ExplainImageOptions): Promise<ImageExplanation> {
  const k = o.finding;
  // what the model was trained on (a cell's cache), else the model's own size and normalisation
  // (model.json), as predict, serve and runs preprocess for it: otherwise the map explains another
  // input than the one the model scores
  if (o.preprocess && o.preset) {
    const conflicts = preprocessConflicts(resolvePreprocess(o.preprocess), { preset: o.preset });
    if (conflicts.length)
      throw new ConfigError(
        `preset ${conflicts.join(', ')}: the model was trained on images preprocessed otherwise (its run's cache), so the map would explain another input than the one it scores; leave the preset out`,
      );
  }
  const meta = readModelMeta(o.model.modelDir);
  const pp = await preprocess(o.image, o.row, {
    preprocess: o.preprocess ?? { preset: o.preset ?? 'biomedclip', ...preprocessFor(meta) },
    ...(o.overlay ? { overlay: o.overlay } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
  });
  const size = pp.geometry.outW;
  const hw = 3 * size * size;
  const n = pp.masked ? 2 : 1;
  const x = new Float32Array(n * hw);
  x.set(pp.original, 0);
  if (pp.masked) x.set(pp.masked, hw);
  const model = await openModel(o.model);
  let result: Attribution;
  let explained: string;
  try {
    result = await model.attribute(x, n, k, o.attribution);
    explained = model.describe(k);
  } finally {
    await model.dispose();
  }
  const maps = Array.from({ length: n }, (_, i) =>
    result.map.subarray(i * size * size, (i + 1) * size * size),
  );
  const anatomy = o.row ? anatomyOnGrid(o.row, pp.geometry, size) : null;
  const png = await attributionFigure(
    [
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
    ],
    size,
    sharedScale(maps),
  );
  const numbers: ExplanationNumbers = {
    finding: FINDINGS[k]!,
    method: o.attribution.method ?? ATTRIBUTION_DEFAULTS.method,
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
  return { png, numbers };
}

/** Lungs ∪ heart of a CheXmask row on the model grid (1 inside, 0 outside). */
function anatomyOnGrid(row: ChexmaskRow, geometry: Geometry, size: number): Uint8Array {
  const anatomy = new Uint8Array(size * size);
  for (const m of Object.values(regionMasksOnGrid(row, geometry)))
    if (m) for (let p = 0; p < m.length; p++) anatomy[p]! |= m[p]!;
  return anatomy;
}
