/**
 * A picture like the paper's Figure 1: the original radiograph and its masked version (Eq. 1) side by
 * side, or the masked image alone, at full resolution or on the preprocessed grid.
 */
import sharp from 'sharp';
import { writeFileAtomicAsync } from '../common/io.js';
import { parseOptions } from '../common/options.js';
import { type ChexmaskRow, sizeRowFromImage } from '../data/chexmask.js';
import { DATASET_FORMATS, type EncodedImage, type ImageLimits } from '../images/input.js';
import { decodeFull, decodePlane, type PreprocessOptions, resolvePreprocess } from '../images/preprocess.js';
import { identityGeometry } from '../masks/geometry.js';
import {
  checkRowSize,
  contourMap,
  contourPart,
  type OverlayOptions,
  OverlayOptionsSchema,
  overlayRgb,
  paintPart,
  type RegionMasks,
} from '../masks/overlay.js';

export interface FigureOptions {
  overlay?: OverlayOptions;
  /** 'pair' (original | masked) or 'masked'. */
  layout?: 'pair' | 'masked';
  /** 'full': the JPEG's own grid (contour thickness scaled by min(W,H)/224); 'preprocessed': the 224 grid. */
  grid?: 'full' | 'preprocessed';
  preprocess?: PreprocessOptions;
  /** Gap between the panels, in pixels. */
  gap?: number;
  /** What the image may be (ts/images/input.ts); default JPEG/PNG/DICOM (a dataset image), 256 MiB, 50 MP. */
  limits?: ImageLimits;
}

/** A figure is written as PNG or JPEG, chosen by the extension: another extension would hold the wrong bytes. */
export function checkFigurePath(out: string): void {
  if (!/\.(png|jpe?g)$/i.test(out))
    throw new RangeError(`${out}: a figure is written as .png, .jpg or .jpeg`);
}

/** Renders the figure and writes it (PNG/JPEG by extension) when `out` is given; returns the encoded bytes. */
export async function renderFigure(
  image: EncodedImage,
  chexmask: ChexmaskRow | RegionMasks,
  opts: FigureOptions = {},
  out?: string,
): Promise<{ width: number; height: number; data: Buffer }> {
  if (out !== undefined) checkFigurePath(out);
  const ov = parseOptions(OverlayOptionsSchema, opts.overlay ?? {}, 'overlay');
  const file = typeof image === 'string' ? image : undefined;
  // figures are of dataset images, and VinDr-CXR's are DICOM
  const limits: ImageLimits = { ...opts.limits, formats: opts.limits?.formats ?? [...DATASET_FORMATS] };
  // A row with blank Height/Width (PadChest) takes the image's size, as preprocess and the cache do.
  const sized = (w: number, h: number) =>
    'sizeFromImage' in chexmask && chexmask.sizeFromImage ? sizeRowFromImage(chexmask, w, h, file) : chexmask;
  let gray: Uint8Array;
  let w: number;
  let h: number;
  let contour: Uint8Array;
  if ((opts.grid ?? 'full') === 'full') {
    const d = await decodeFull(image, limits);
    gray = d.gray;
    w = d.width;
    h = d.height;
    const row = sized(w, h);
    checkRowSize(row, w, h, file);
    // the band as thick as on the 224 grid: 27 px for the default 2 on a 3000 px image
    contour = contourMap(row, identityGeometry(w, h), contourPart(ov), Math.min(w, h) / 224);
  } else {
    const pp = resolvePreprocess(opts.preprocess);
    const d = await decodePlane(image, pp, limits);
    gray = d.gray;
    w = d.geometry.outW;
    h = d.geometry.outH;
    const row = sized(d.geometry.srcW, d.geometry.srcH);
    checkRowSize(row, d.geometry.srcW, d.geometry.srcH, file);
    contour = contourMap(row, d.geometry, contourPart(ov));
  }
  const masked = overlayRgb(gray, contour, paintPart(ov));
  let rgb: Uint8Array;
  let W = w;
  if ((opts.layout ?? 'pair') === 'pair') {
    const gap = opts.gap ?? Math.max(2, Math.round(w / 100));
    W = 2 * w + gap;
    rgb = new Uint8Array(W * h * 3).fill(255);
    const orig = overlayRgb(gray, null);
    for (let i = 0; i < h; i++) {
      rgb.set(orig.subarray(i * w * 3, (i + 1) * w * 3), i * W * 3);
      rgb.set(masked.subarray(i * w * 3, (i + 1) * w * 3), (i * W + w + gap) * 3);
    }
  } else rgb = masked;
  let pipe = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.length), {
    raw: { width: W, height: h, channels: 3 },
  });
  pipe = out && /\.jpe?g$/i.test(out) ? pipe.jpeg({ quality: 92 }) : pipe.png();
  const data = await pipe.toBuffer();
  if (out) await writeFileAtomicAsync(out, data, { links: 'follow' }); // a path the caller named
  return { width: W, height: h, data };
}
