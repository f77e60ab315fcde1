/**
 * Eq. 1 of the paper, x̃ = x + α·Contour(m): the contour of each region (lungs red, heart blue by
 * default) is added to the grayscale image made RGB, and clipped to [0, 1]. Contours are computed on
 * the output grid (see docs/data.md): each region's polygon (from the landmarks, mapped through the
 * same resize/crop as the image) or its RLE mask (resampled onto the grid) is filled, and its inner
 * boundary band of `thickness` pixels is the contour. Outside those pixels the masked image equals the
 * original exactly.
 */
import { z } from 'zod';
import { DataError } from '../common/errors.js';
import { parseOptions } from '../common/options.js';
import type { ChexmaskRow } from '../data/chexmask.js';
import { NUM_LANDMARKS, REGIONS, type Region, regionPolygon } from '../data/landmarks.js';
import { decodeRle } from '../data/rle.js';
import { type Geometry, mapPoints, sampleMask } from './geometry.js';
import { fillPolygon, maskBoundary } from './raster.js';

export const REGION_BITS: Record<Region, number> = { rightLung: 1, leftLung: 2, heart: 4 };
/** The cache's mask plane: bits 0-2 the contours (painted), bits 3-5 the filled regions (not painted). */
export const CONTOUR_BITS = 7;
export const FILL_SHIFT = 3;

const Rgb = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1), z.number().min(0).max(1)]);

/** How contours are made (these change the cached contour maps). */
export const ContourOptionsSchema = z
  .object({
    /** Band width in output-grid pixels. */
    thickness: z.number().int().min(1).max(16).default(2),
    /** landmarks: polygons from the 120 points; rle: the RLE masks (needs rows joined with keepRle). */
    source: z.enum(['landmarks', 'rle']).default('landmarks'),
  })
  .strict();
export type ContourOptions = z.input<typeof ContourOptionsSchema>;

/** How contours are painted (applied when tensors are made; not part of the cache key). */
export const PaintOptionsSchema = z
  .object({
    alpha: z.number().min(0).max(10).default(1),
    colors: z
      .object({ rightLung: Rgb, leftLung: Rgb, heart: Rgb })
      .strict()
      .default({ rightLung: [1, 0, 0], leftLung: [1, 0, 0], heart: [0, 0, 1] }),
  })
  .strict();
export type PaintOptions = z.input<typeof PaintOptionsSchema>;

export const OverlayOptionsSchema = ContourOptionsSchema.extend(PaintOptionsSchema.shape);
export type OverlayOptions = z.input<typeof OverlayOptionsSchema>;
export type ResolvedOverlay = z.output<typeof OverlayOptionsSchema>;

/** The contour half of resolved overlay options (what contourMap takes; the schemas refuse the rest). */
export const contourPart = (o: ResolvedOverlay): z.output<typeof ContourOptionsSchema> => ({
  thickness: o.thickness,
  source: o.source,
});
/** The paint half of resolved overlay options (what paintTable takes). */
export const paintPart = (o: ResolvedOverlay): z.output<typeof PaintOptionsSchema> => ({
  alpha: o.alpha,
  colors: o.colors,
});

/** Masks given directly (row-major, source grid), instead of a CheXmask row. */
export interface RegionMasks {
  width: number;
  height: number;
  masks: Partial<Record<Region, Uint8Array | null>>;
}

const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

/**
 * Refuses masks that would draw wrong or no contours: region masks whose width/height are not
 * positive integers, whose arrays are not Uint8Arrays of exactly width×height, with an unknown region
 * name, or with no region at all; a row whose landmarks are not NUM_LANDMARKS finite points.
 * @throws {DataError} `bad-masks`, naming the field.
 */
export function checkMaskSource(src: ChexmaskRow | RegionMasks, file?: string): void {
  const fail = (field: string, message: string) => {
    throw new DataError('bad-masks', message, { file, id: (src as { dicomId?: string }).dicomId, field });
  };
  if (!src || typeof src !== 'object') fail('masks', 'expected a CheXmask row or region masks');
  if (!isPositiveInt(src.width)) fail('width', `width must be a positive integer, got ${String(src.width)}`);
  if (!isPositiveInt(src.height))
    fail('height', `height must be a positive integer, got ${String(src.height)}`);
  if ('masks' in src) {
    const masks = src.masks as Record<string, unknown>;
    if (!masks || typeof masks !== 'object') fail('masks', 'masks must be an object of region → Uint8Array');
    const hw = src.width * src.height;
    let given = 0;
    for (const [region, m] of Object.entries(masks)) {
      const field = `masks.${region}`;
      if (!(REGIONS as readonly string[]).includes(region)) {
        fail(field, `unknown region "${region}" (expected ${REGIONS.join(', ')})`);
      }
      if (m === null || m === undefined) continue;
      if (!(m instanceof Uint8Array))
        fail(field, 'a region mask must be a Uint8Array (row-major, width×height)');
      const n = (m as Uint8Array).length;
      if (n !== hw) {
        fail(field, `mask has ${n} values, expected width×height = ${src.width}×${src.height} = ${hw}`);
      }
      given++;
    }
    if (given === 0) fail('masks', `no region mask given (expected one or more of ${REGIONS.join(', ')})`);
    return;
  }
  const lm = (src as ChexmaskRow).landmarks as unknown;
  const typed = lm instanceof Float64Array || lm instanceof Float32Array;
  if (!typed || lm.length !== NUM_LANDMARKS * 2) {
    const n = typed ? lm.length : typeof lm;
    fail('landmarks', `landmarks must be a Float64Array of ${NUM_LANDMARKS * 2} numbers, got ${n}`);
  }
  for (const v of lm as Float64Array | Float32Array)
    if (!Number.isFinite(v)) fail('landmarks', 'landmarks must be finite');
}

/** Refuses a CheXmask row whose grid is not the image's; a swapped Height/Width is named as such. */
export function checkRowSize(
  row: { dicomId?: string; height: number; width: number },
  width: number,
  height: number,
  file?: string,
): void {
  if (row.height === height && row.width === width) return;
  const swapped = row.height === width && row.width === height;
  throw new DataError(
    swapped ? 'size-swapped' : 'size-mismatch',
    swapped
      ? `CheXmask Height/Width ${row.height}×${row.width} are swapped relative to the JPEG (${height} rows × ${width} cols); refusing to draw a misaligned mask`
      : `CheXmask Height/Width ${row.height}×${row.width} do not match the JPEG (${height} rows × ${width} cols); refusing to draw a misaligned mask`,
    { file, id: row.dicomId, field: 'Height/Width' },
  );
}

/** Region masks on the output grid. */
export function regionMasksOnGrid(
  src: ChexmaskRow | RegionMasks,
  g: Geometry,
  source: 'landmarks' | 'rle' = 'landmarks',
): Record<Region, Uint8Array | null> {
  checkMaskSource(src);
  const out = {} as Record<Region, Uint8Array | null>;
  if ('masks' in src) {
    for (const r of REGIONS) {
      const m = src.masks[r];
      out[r] = m ? sampleMask(m, g) : null;
    }
    return out;
  }
  if (source === 'rle') {
    if (!src.rle) {
      throw new DataError(
        'no-rle',
        'contour source is "rle" but the row holds no RLE cells (join with keepRle: true)',
        {
          id: src.dicomId,
        },
      );
    }
    for (const r of REGIONS) {
      if (src.emptyMasks.includes(r)) {
        out[r] = null;
        continue;
      }
      const full = decodeRle(src.rle[r], src.height, src.width, { id: src.dicomId, field: r });
      out[r] = sampleMask(full, g);
    }
    return out;
  }
  for (const r of REGIONS) {
    const pts = mapPoints(regionPolygon(src.landmarks, r), g);
    out[r] = fillPolygon(pts, g.outW, g.outH, new Uint8Array(g.outW * g.outH));
  }
  return out;
}

/**
 * Contour bit map on the output grid: bit 1 right lung, 2 left lung, 4 heart. `scale` multiplies the
 * band width (rounded, at least 1): a figure drawn at full resolution scales it by min(W, H)/224 so
 * the band looks as it does on the model's grid; the option itself stays within 1–16.
 */
export function contourMap(
  src: ChexmaskRow | RegionMasks,
  g: Geometry,
  opts: ContourOptions = {},
  scale = 1,
): Uint8Array {
  return drawMasks(src, g, opts, false, scale);
}

/**
 * The cache's mask plane: contourMap's bits, plus each filled region at bit << FILL_SHIFT (the
 * segmenter's targets and the anatomy of attribution maps, kept so neither needs the CheXmask row).
 */
export function maskPlane(
  src: ChexmaskRow | RegionMasks,
  g: Geometry,
  opts: ContourOptions = {},
): Uint8Array {
  return drawMasks(src, g, opts, true);
}

function drawMasks(
  src: ChexmaskRow | RegionMasks,
  g: Geometry,
  opts: ContourOptions,
  fill: boolean,
  scale = 1,
): Uint8Array {
  const o = parseOptions(ContourOptionsSchema, opts, 'contour');
  if (!(scale > 0 && Number.isFinite(scale)))
    throw new RangeError(`contour scale must be positive, got ${scale}`);
  const thickness = Math.max(1, Math.round(o.thickness * scale));
  const masks = regionMasksOnGrid(src, g, o.source);
  const out = new Uint8Array(g.outW * g.outH);
  for (const r of REGIONS) {
    const m = masks[r];
    if (!m) continue;
    maskBoundary(m, g.outW, g.outH, thickness, out, REGION_BITS[r]);
    if (fill) {
      const bit = REGION_BITS[r] << FILL_SHIFT;
      for (let p = 0; p < m.length; p++) if (m[p]) out[p] |= bit;
    }
  }
  return out;
}

/** Region bits (1 right lung, 2 left lung, 4 heart) of a mask plane, into `out` at `offset`. */
export function regionBits(plane: Uint8Array, out = new Uint8Array(plane.length), offset = 0): Uint8Array {
  for (let p = 0; p < plane.length; p++) out[offset + p] = (plane[p] >> FILL_SHIFT) & CONTOUR_BITS;
  return out;
}

/** Per contour-bit value (0..7): the RGB increment α·Σ colour, precomputed. */
export function paintTable(paint: PaintOptions = {}): Float32Array {
  const p = parseOptions(PaintOptionsSchema, paint, 'paint');
  const t = new Float32Array(8 * 3);
  for (let b = 0; b < 8; b++) {
    for (const r of REGIONS) {
      if (b & REGION_BITS[r]) for (let c = 0; c < 3; c++) t[b * 3 + c] += p.alpha * p.colors[r][c];
    }
  }
  return t;
}

/** Interleaved RGB uint8 picture of x̃ (or of x when contour is null), for figures. */
export function overlayRgb(
  gray: Uint8Array,
  contour: Uint8Array | null,
  paint: PaintOptions = {},
): Uint8Array {
  const table = paintTable(paint);
  // Every (contour bits, channel, gray level) value looked up, not recomputed per pixel: same formula.
  const lut = new Uint8Array(8 * 3 * 256);
  for (let k = 0; k < 8 * 3; k++) {
    for (let v = 0; v < 256; v++) lut[k * 256 + v] = Math.round(Math.min(1, v / 255 + table[k]) * 255);
  }
  const out = new Uint8Array(gray.length * 3);
  for (let p = 0, o = 0; p < gray.length; p++, o += 3) {
    const v = gray[p];
    const at = contour ? (contour[p] & CONTOUR_BITS) * 768 + v : v;
    out[o] = lut[at];
    out[o + 1] = lut[at + 256];
    out[o + 2] = lut[at + 512];
  }
  return out;
}
