/**
 * Image preprocessing with sharp, matching BiomedCLIP's eval transform by default
 * (bicubic resize of the shortest side to 224, centre crop 224, gray→RGB, [0,1], CLIP mean/std),
 * or the paper's plain 224×224 resize with ImageNet statistics. The JPEG is decoded once into a
 * uint8 224×224 grayscale plane; the original and masked tensors are both made from that plane
 * and the contour map (see ../masks/overlay.ts).
 */
import { createHash } from 'node:crypto';
import sharp, { type OutputInfo } from 'sharp';
import { z } from 'zod';
import {
  type ChexmaskRow,
  DEFAULT_MIN_DICE,
  parseChexmaskRecord,
  sizeRowFromImage,
} from '../data/chexmask.js';

/** One CheXmask CSV record as column name → cell (e.g. from a service's own CSV reader). */
export type ChexmaskRecord = Record<string, string | number | null | undefined>;

import { DataError } from '../common/errors.js';
import { checkArg, parseOptions, rule, typeName } from '../common/options.js';
import { computeGeometry, type Geometry } from '../masks/geometry.js';
import {
  CONTOUR_BITS,
  type ContourOptionsSchema,
  checkMaskSource,
  checkRowSize,
  contourMap,
  contourPart,
  type OverlayOptions,
  OverlayOptionsSchema,
  paintPart,
  paintTable,
  type RegionMasks,
} from '../masks/overlay.js';
import { MAX_IMAGE_SIZE } from '../model/meta.js';
import { checkedImage, type EncodedImage, type ImageLimits, resolveImageLimits } from './input.js';
import { type ImageSource, imageSource } from './source.js';

export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

const Triple = z.tuple([z.number(), z.number(), z.number()]);
// Normalisation divides by std: 0 made every input NaN/Inf (a failure at each predict that never
// named std), a negative one a sign-flipped image scored without a word, and a tiny one overflows
// float32. Real stds are 0.2-0.3 on the [0, 1] scale.
const MIN_STD = 1e-4;
const StdTriple = z.tuple([z.number().min(MIN_STD), z.number().min(MIN_STD), z.number().min(MIN_STD)]);
export const PreprocessOptionsSchema = z
  .object({
    /** biomedclip: shortest-side bicubic + centre crop + CLIP stats; paper: squash to size + ImageNet stats. */
    preset: z.enum(['biomedclip', 'paper']).default('biomedclip'),
    size: z.number().int().min(16).max(MAX_IMAGE_SIZE).default(224),
    resize: z.enum(['shortest-crop', 'squash']).optional(),
    kernel: z.enum(['cubic', 'lanczos3', 'linear', 'mitchell', 'nearest']).default('cubic'),
    mean: Triple.optional(),
    std: StdTriple.optional(),
    /**
     * JPEG shrink-on-load (DCT scaling): several times faster on large images but further from PIL
     * (mean abs diff ≈0.002 instead of ≈0.0006 on the [0,1] scale); off by default.
     */
    fastShrinkOnLoad: z.boolean().default(false),
  })
  .strict();
export type PreprocessOptions = z.input<typeof PreprocessOptionsSchema>;
/** Preprocessing settings with every default filled in. */
export interface ResolvedPreprocess {
  preset: 'biomedclip' | 'paper';
  size: number;
  resize: 'shortest-crop' | 'squash';
  kernel: 'cubic' | 'lanczos3' | 'linear' | 'mitchell' | 'nearest';
  mean: [number, number, number];
  std: [number, number, number];
  fastShrinkOnLoad: boolean;
}

export function resolvePreprocess(opts: PreprocessOptions = {}): ResolvedPreprocess {
  const o = parseOptions(PreprocessOptionsSchema, opts, 'preprocess');
  const paper = o.preset === 'paper';
  return {
    preset: o.preset,
    size: o.size,
    resize: o.resize ?? (paper ? 'squash' : 'shortest-crop'),
    kernel: o.kernel,
    mean: (o.mean ?? (paper ? [...IMAGENET_MEAN] : [...CLIP_MEAN])) as [number, number, number],
    std: (o.std ?? (paper ? [...IMAGENET_STD] : [...CLIP_STD])) as [number, number, number],
    fastShrinkOnLoad: o.fastShrinkOnLoad,
  };
}

/** The settings that decide what a model sees; shrink-on-load is a speed choice close to either. */
const TRAINED_FIELDS = ['preset', 'size', 'resize', 'kernel', 'mean', 'std'] as const;

/**
 * The fields `asked` names whose values differ from the preprocessing a model was trained with, in
 * words (`preset "biomedclip" (asked) vs "paper" (trained)`); [] when it names none that differ.
 * Fields `asked` leaves out are not compared: they take the trained values.
 */
export function preprocessConflicts(trained: ResolvedPreprocess, asked: PreprocessOptions): string[] {
  const out: string[] = [];
  for (const k of TRAINED_FIELDS) {
    const v = (asked as Record<string, unknown>)[k];
    if (v === undefined) continue;
    const [a, t] = [JSON.stringify(v), JSON.stringify(trained[k])];
    if (a !== t) out.push(`${k} ${a} (asked) vs ${t} (trained)`);
  }
  return out;
}

/** The data settings that change which images a cache holds and with which labels. */
export interface CacheDataSettings {
  /** CheXmask quality filter the rows were joined with (default DEFAULT_MIN_DICE, 0.7, as joinChexmask). */
  minDice?: number;
  /** The index's uncertain (-1) and blank label handling; null when not known (an index without summary). */
  labelPolicy?: { uncertain: string; blank: string } | null;
}

/**
 * Short hash of everything that changes the cached planes (preprocess + contour geometry) and of the
 * data settings that change the cached set and its labels (minDice, label policy): a rebuild with
 * another --min-dice or label policy goes to another folder instead of replacing a run's data.
 */
export function settingsKey(
  pp: ResolvedPreprocess,
  contour: z.output<typeof ContourOptionsSchema>,
  data: CacheDataSettings = {},
): string {
  const { mean: _m, std: _s, ...geom } = pp; // mean/std are applied when batches are made
  const labels = data.labelPolicy
    ? { uncertain: data.labelPolicy.uncertain, blank: data.labelPolicy.blank }
    : null;
  const text = JSON.stringify({
    v: 3,
    ...geom,
    thickness: contour.thickness,
    source: contour.source,
    minDice: data.minDice ?? DEFAULT_MIN_DICE,
    labels,
  });
  return createHash('sha1').update(text).digest('hex').slice(0, 12);
}

export interface DecodedPlane {
  /** size×size uint8 grayscale, row-major. */
  gray: Uint8Array;
  geometry: Geometry;
}

const decodeError = (e: unknown, file: string) =>
  e instanceof DataError
    ? e
    : new DataError('image-corrupt', `cannot decode image: ${(e as Error).message.split('\n')[0]}`, { file });

/**
 * Checks the input (ts/images/input.ts: a regular file within the byte cap, an accepted format, a
 * header within the pixel cap), then decodes once into the output-grid grayscale plane.
 */
export async function decodePlane(
  input: EncodedImage,
  pp: ResolvedPreprocess,
  limits: ImageLimits = {},
): Promise<DecodedPlane & { buf: Buffer }> {
  const lim = resolveImageLimits(limits);
  const { buf, name, header } = await checkedImage(input, lim);
  try {
    const src = await imageSource(buf, lim.maxPixels, header);
    const g = computeGeometry(src.width, src.height, pp.size, pp.resize);
    const interpolator = AFFINE_INTERPOLATORS[pp.kernel];
    if ((g.resizeW > g.srcW || g.resizeH > g.srcH) && interpolator)
      return { gray: await enlargePlane(src, g, pp, interpolator), geometry: g, buf };
    let pipe = src.open().resize(g.resizeW, g.resizeH, {
      fit: 'fill',
      kernel: pp.kernel,
      fastShrinkOnLoad: pp.fastShrinkOnLoad,
    });
    if (g.resizeW !== g.outW || g.resizeH !== g.outH)
      pipe = pipe.extract({ left: g.left, top: g.top, width: g.outW, height: g.outH });
    const { data, info } = await pipe.raw().toBuffer({ resolveWithObject: true });
    checkDecoded(info, g.outW, g.outH);
    return { gray: new Uint8Array(data.buffer, data.byteOffset, data.length), geometry: g, buf };
  } catch (e) {
    throw decodeError(e, name);
  }
}

/**
 * The kernels whose enlarging is done with libvips' affine, which interpolates at Pillow's pixel
 * centres (libvips' resize puts them about half a source pixel away: up to 57/255 from open_clip's
 * output). Catmull-Rom is PIL's BICUBIC and bilinear its BILINEAR when enlarging. libvips has no
 * lanczos3 interpolator, so `lanczos3`, like `mitchell` and `nearest`, still enlarges in resize.
 */
const AFFINE_INTERPOLATORS: Partial<Record<ResolvedPreprocess['kernel'], 'bicubic' | 'bilinear'>> = {
  cubic: 'bicubic',
  linear: 'bilinear',
};

/**
 * Pixels copied outwards at an image edge before the affine: libvips' affine reads black past the
 * edge (up to 25/255 from PIL in the outermost pixels), while PIL drops those taps and renormalises;
 * repeating the edge pixel comes within 2/255 of it on smooth borders (6-8 on textured ones). Three
 * covers the bicubic taps (two) with one spare.
 */
const EDGE_PAD = 3;

/**
 * One axis of an enlargement: the source span [from, to) the output window [left, left + out) reads
 * (its interpolation taps included), so a crop of a long enlarged image decodes only its window.
 * Output pixel i is centred on source position (i + 0.5)/scale − 0.5, as in PIL.
 */
function sourceSpan(left: number, out: number, scale: number, len: number): { from: number; to: number } {
  const centre = (i: number) => (i + 0.5) / scale - 0.5;
  return {
    from: Math.max(0, Math.floor(centre(left)) - EDGE_PAD),
    to: Math.min(len, Math.floor(centre(left + out - 1)) + 1 + EDGE_PAD),
  };
}

/**
 * An image enlarged along at least one axis: libvips shrinks the other axis if it shrinks (resize, as
 * when nothing enlarges), then enlarges with affine, output pixel i centred on source position
 * (i + 0.5)/scale − 0.5 as in PIL. Only the output window is made.
 */
async function enlargePlane(
  src: ImageSource,
  g: Geometry,
  pp: ResolvedPreprocess,
  interpolator: 'bicubic' | 'bilinear',
): Promise<Uint8Array> {
  const w = Math.min(g.srcW, g.resizeW);
  const h = Math.min(g.srcH, g.resizeH);
  const sx = g.resizeW / w;
  const sy = g.resizeH / h;
  const xs = sourceSpan(g.left, g.outW, sx, w);
  const ys = sourceSpan(g.top, g.outH, sy, h);
  const win = { left: xs.from, top: ys.from, width: xs.to - xs.from, height: ys.to - ys.from };
  // Only a real image edge is padded: a window's inner side has its real neighbours.
  const pad = {
    left: xs.from === 0 ? EDGE_PAD : 0,
    right: xs.to === w ? EDGE_PAD : 0,
    top: ys.from === 0 ? EDGE_PAD : 0,
    bottom: ys.to === h ? EDGE_PAD : 0,
  };
  let pipe = src.open();
  if (w !== g.srcW || h !== g.srcH)
    pipe = pipe.resize(w, h, { fit: 'fill', kernel: pp.kernel, fastShrinkOnLoad: pp.fastShrinkOnLoad });
  if (win.width !== w || win.height !== h) pipe = pipe.extract(win);
  const a = await pipe
    .extend({ ...pad, extendWith: 'copy' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  checkDecoded(a.info, win.width + pad.left + pad.right, win.height + pad.top + pad.bottom);
  // libvips maps input pixel u to (u + idx)·scale + odx and starts its output at 0 whatever the
  // offsets, so output pixel j is the window's pixel j.
  const { data, info } = await sharp(a.data, { raw: { ...a.info, channels: 1 } })
    .grayscale() // else sharp writes the gray out as sRGB, 3 bands
    .affine([sx, 0, 0, sy], {
      interpolator,
      idx: xs.from - pad.left,
      idy: ys.from - pad.top,
      odx: 0.5 * (sx - 1) - g.left,
      ody: 0.5 * (sy - 1) - g.top,
    })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1 || info.width < g.outW || info.height < g.outH)
    throw new Error(`unexpected enlarge result ${info.width}×${info.height}×${info.channels}`);
  // The output covers the whole padded input: a few pixels past the window on the right and bottom.
  // Keeping the window's rows is a copy of outH rows, cheaper than another libvips pass.
  if (info.width === g.outW) return new Uint8Array(data.buffer, data.byteOffset, g.outW * g.outH);
  const out = new Uint8Array(g.outW * g.outH);
  for (let y = 0; y < g.outH; y++)
    out.set(data.subarray(y * info.width, y * info.width + g.outW), y * g.outW);
  return out;
}

function checkDecoded(info: OutputInfo, width: number, height: number): void {
  if (info.channels !== 1 || info.width !== width || info.height !== height)
    throw new Error(`unexpected decode result ${info.width}×${info.height}×${info.channels}`);
}

/** Full-resolution grayscale decode (for figures), after the same checks as decodePlane. */
export async function decodeFull(
  input: EncodedImage,
  limits: ImageLimits = {},
): Promise<{ gray: Uint8Array; width: number; height: number }> {
  const lim = resolveImageLimits(limits);
  const { buf, name, header } = await checkedImage(input, lim);
  try {
    const { data, info } = await (await imageSource(buf, lim.maxPixels, header))
      .open()
      .raw()
      .toBuffer({ resolveWithObject: true });
    return {
      gray: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
    };
  } catch (e) {
    throw decodeError(e, name);
  }
}

/**
 * Writes one normalised CHW image (3×size×size) into `out` at element `offset`: the gray plane made
 * RGB, plus the painted contours when `contour` is given (Eq. 1, clipped to 1), then (v − mean)/std.
 */
export function planeToTensor(
  gray: Uint8Array,
  contour: Uint8Array | null,
  pp: ResolvedPreprocess,
  table: Float32Array | null,
  out: Float32Array = new Float32Array(3 * gray.length),
  offset = 0,
): Float32Array {
  const hw = gray.length;
  const lut = normLut(pp);
  // Contour pixels are a few per cent of the image: list them once, then touch only those.
  let nc = 0;
  if (contour && table) {
    if (scratch.length < hw) scratch = new Int32Array(hw);
    // Only bits 0-2 are painted (a cache mask plane also holds the filled regions in bits 3-5).
    for (let p = 0; p < hw; p++) if (contour[p] & CONTOUR_BITS) scratch[nc++] = p;
  }
  for (let c = 0; c < 3; c++) {
    const m = pp.mean[c];
    const inv = 1 / pp.std[c];
    const base = offset + c * hw;
    const l = c * 256;
    for (let p = 0; p < hw; p++) out[base + p] = lut[l + gray[p]];
    if (nc && contour && table) {
      for (let k = 0; k < nc; k++) {
        const p = scratch[k];
        let v = gray[p] / 255 + table[(contour[p] & CONTOUR_BITS) * 3 + c];
        if (v > 1) v = 1;
        out[base + p] = (v - m) * inv;
      }
    }
  }
  return out;
}

let scratch = new Int32Array(0);
let lutKey = '';
let lutCache = new Float32Array(0);
/**
 * (v/255 − mean)/std for every uint8 v and channel, computed exactly as the per-pixel formula and
 * rounded to float32 once, as storing it in the output would.
 */
function normLut(pp: ResolvedPreprocess): Float32Array {
  const key = `${pp.mean.join(',')}|${pp.std.join(',')}`;
  if (key !== lutKey) {
    lutCache = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) {
      const inv = 1 / pp.std[c];
      for (let v = 0; v < 256; v++) lutCache[c * 256 + v] = (v / 255 - pp.mean[c]) * inv;
    }
    lutKey = key;
  }
  return lutCache;
}

/**
 * What `preprocess` returns: the original and masked tensors, the gray plane and contours, and the geometry.
 */
export interface PreprocessResult {
  /** [3, size, size] normalised. */
  original: Float32Array;
  /** [3, size, size] normalised, with contours; null when no row/masks were given. */
  masked: Float32Array | null;
  gray: Uint8Array;
  contour: Uint8Array | null;
  geometry: Geometry;
  settings: ResolvedPreprocess;
}

/**
 * The options object of `preprocess`: every key known, since a misspelled one (`imageLimits` for
 * `limits`) would drop what it sets, the pixel cap included, without a word. The nested objects are
 * checked by their own parsers.
 */
const PreprocessCallSchema = z
  .object({
    preprocess: z.unknown().optional(),
    overlay: z.unknown().optional(),
    limits: z.unknown().optional(),
  })
  .strict();

/**
 * The CheXmask argument of `preprocess` and `MaskingPredictor.predict`: an object or nothing. A string
 * (the dicom_id given instead of its row) or a number is refused by name.
 */
export const chexmaskArg = rule<object | null | undefined>(
  (v) => v === undefined || v === null || (typeof v === 'object' && !Array.isArray(v)),
  (v) => `must be a CheXmask row, a CSV record or region masks, got ${typeName(v)}`,
  'type',
);

/**
 * For a service: one image (path or Buffer) and optionally its CheXmask row (a parsed ChexmaskRow, a raw
 * CSV record, or region masks) → the original and masked preprocessed tensors. A row whose
 * Height/Width differ from the JPEG, region masks whose arrays are not width×height, and an image
 * outside `limits` (ts/images/input.ts: JPEG/PNG, ≤ 256 MiB, ≤ 50 MP by default) are refused (DataError).
 * @throws {TypeError|RangeError} (rejects) an unknown option (at any level), one of the wrong type or
 *   out of range, or a `row` that is not an object (a string, a number).
 * @throws {DataError} (rejects) an image that cannot be read or decoded within `limits`, or a row that
 *   does not fit it.
 */
export async function preprocess(
  image: EncodedImage,
  row?: ChexmaskRow | RegionMasks | ChexmaskRecord | null,
  options: { preprocess?: PreprocessOptions; overlay?: OverlayOptions; limits?: ImageLimits } = {},
): Promise<PreprocessResult> {
  const o = parseOptions(PreprocessCallSchema, options, 'preprocess') as typeof options;
  checkArg(chexmaskArg, row, 'row');
  const pp = resolvePreprocess(o.preprocess);
  const ov = parseOptions(OverlayOptionsSchema, o.overlay ?? {}, 'overlay');
  // A raw CSV record (column name → cell) is parsed first (and refused with a DataError if malformed).
  const chexmask =
    row && 'Landmarks' in row
      ? parseChexmaskRecord(row as ChexmaskRecord, { keepRle: ov.source === 'rle' })
      : (row as ChexmaskRow | RegionMasks | null | undefined);
  if (chexmask) checkMaskSource(chexmask, typeof image === 'string' ? image : undefined);
  const { gray, geometry } = await decodePlane(image, pp, o.limits);
  const original = planeToTensor(gray, null, pp, null);
  let contour: Uint8Array | null = null;
  let masked: Float32Array | null = null;
  if (chexmask) {
    const file = typeof image === 'string' ? image : undefined;
    const fitted =
      'landmarks' in chexmask ? sizeRowFromImage(chexmask, geometry.srcW, geometry.srcH, file) : chexmask;
    checkRowSize(fitted, geometry.srcW, geometry.srcH, file);
    contour = contourMap(fitted, geometry, contourPart(ov));
    masked = planeToTensor(gray, contour, pp, paintTable(paintPart(ov)));
  }
  return { original, masked, gray, contour, geometry, settings: pp };
}
