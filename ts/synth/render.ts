/** Renders one planned synthetic image: JPEG on disk + its CheXmask CSV line (or '' when it has none). */

import { join } from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '../common/random.js';
import { formatLandmarksFlat, formatLandmarksNumpy, regionPolygon } from '../data/landmarks.js';

import { encodeRle } from '../data/rle.js';
import { fillPolygon } from '../masks/raster.js';
import { writeDicom } from './dicom.js';
import { perturbLandmarks, renderFrontal, renderLateral } from './phantom.js';
import { writeRegions } from './regions.js';
import { writeTreeFile } from './write.js';

export interface PlannedImage {
  dicomId: string;
  view: string;
  width: number;
  height: number;
  path: string;
  shown: boolean[];
  chexmask: 'ok' | 'low-rca' | 'missing' | 'none';
  rca: number | null;
  stream: number;
  /** File form (default JPEG, as MIMIC-CXR-JPG); png16 and dicom hold 12-bit values. */
  format?: 'jpeg' | 'png' | 'png-rgba' | 'png16' | 'dicom';
}

export interface RenderSettings {
  seed: number;
  /** The dataset root the image paths are relative to. */
  mimicRoot: string;
  quality: number;
  landmarkFormat: 'numpy' | 'flat';
}

export async function renderOne(img: PlannedImage, s: RenderSettings): Promise<string> {
  const rng = mulberry32(Math.imul(s.seed, 0x9e3779b1) ^ (img.stream * 0x85ebca6b + 0x165667b1));
  const [atelectasis, cardiomegaly, consolidation, edema, effusion] = img.shown;
  const f = { atelectasis, cardiomegaly, consolidation, edema, effusion };
  const frontal = img.view !== 'LATERAL' && img.view !== 'LL';
  const ph = frontal
    ? renderFrontal(rng, img.width, img.height, f, img.view === 'AP')
    : renderLateral(rng, img.width, img.height, f);
  let line = '';
  if (img.chexmask === 'ok' || img.chexmask === 'low-rca') {
    let lm = ph.landmarks as Float64Array;
    if (img.chexmask === 'low-rca') lm = perturbLandmarks(rng, lm, img.width, img.height, 0.05);
    const cells = (['leftLung', 'rightLung', 'heart'] as const).map((r) => {
      const m = fillPolygon(
        regionPolygon(lm, r),
        img.width,
        img.height,
        new Uint8Array(img.width * img.height),
      );
      return encodeRle(m, img.height, img.width);
    });
    const lmText = s.landmarkFormat === 'numpy' ? formatLandmarksNumpy(lm) : formatLandmarksFlat(lm);
    const rcaMax = Math.min(0.99, (img.rca as number) + 0.03 + 0.02 * rng());
    line = [img.dicomId, img.rca, rcaMax.toFixed(4), `"${lmText}"`, ...cells, img.height, img.width].join(
      ',',
    );
  }
  const pipe = sharp(Buffer.from(ph.pixels.buffer, ph.pixels.byteOffset, ph.pixels.length), {
    raw: { width: img.width, height: img.height, channels: 1 },
  }).blur(0.7);
  const file = join(s.mimicRoot, img.path);
  if (img.format === 'png16' || img.format === 'dicom') {
    // 12-bit detector values, as PadChest's PNGs and VinDr's DICOMs hold
    const px = await pipe.raw().toBuffer();
    const v = new Uint16Array(px.length);
    for (let i = 0; i < px.length; i++) v[i] = Math.round((px[i] * 4095) / 255);
    if (img.format === 'png16')
      await sharp(v, { raw: { width: img.width, height: img.height, channels: 1 } })
        .toColourspace('grey16')
        .png()
        .toBuffer()
        .then((png) => writeTreeFile(file, png));
    else {
      // stored inverted as MONOCHROME1 (as many VinDr files), windowed to the full range
      for (let i = 0; i < v.length; i++) v[i] = 4095 - v[i];
      const dicom = writeDicom({
        width: img.width,
        height: img.height,
        values: v,
        bitsStored: 12,
        photometric: 'MONOCHROME1',
        window: [2048, 4096],
      });
      await writeTreeFile(file, dicom);
    }
  } else if (img.format === 'png')
    await writeTreeFile(file, await pipe.toColourspace('b-w').png().toBuffer());
  else if (img.format === 'png-rgba')
    await writeTreeFile(file, await pipe.toColourspace('srgb').ensureAlpha(1).png().toBuffer());
  // one grey component, as the real files are (sharp would write sRGB by default, which decodes slower)
  else await writeTreeFile(file, await pipe.toColourspace('b-w').jpeg({ quality: s.quality }).toBuffer());
  // Ground truth for attribution: where each finding was drawn (no pixel above depends on it).
  if (ph.regions) await writeRegions(join(s.mimicRoot, img.path), ph.regions, img.width, img.height);
  return line;
}
