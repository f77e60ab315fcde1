/**
 * Does attribution point at the finding? On synthetic images the generator recorded where each finding
 * was drawn (ts/synth/regions.ts); for every (image, finding drawn in it) this explains that finding's
 * score and measures the share of attribution mass inside the finding's region and whether the map's
 * peak lies in it (pointing game), next to the chance levels a map blind to the image would get (the
 * region's share of the grid, for both).
 */

import { FINDINGS, type Finding } from '../common/labels.js';
import { type PreprocessOptions, preprocess } from '../images/preprocess.js';
import { sampleMask } from '../masks/geometry.js';
import type { Attribution } from '../model/attribution.js';
import { readRegions } from '../synth/regions.js';
import { areaShare, massInside, pointingHit } from './measures.js';

/** One explained (image, finding): the map [S,S] and the finding bits on the same grid. */
export interface LocalisationSample {
  finding: number;
  map: ArrayLike<number>;
  regions: ArrayLike<number>;
}

export interface FindingLocalisation {
  finding: Finding;
  /** Images in which the finding was drawn (and explained). */
  images: number;
  /** Mean share of attribution mass inside the finding's region. */
  massInside: number;
  /** Mean region share of the grid: what an even map would put inside (chance). */
  chance: number;
  /** Share of images whose map peak lies in the region (pointing game); chance = `chance`. */
  pointingRate: number;
  /** massInside / chance (> 1: the map concentrates on the finding). */
  enrichment: number;
}

/** Per-finding means over the samples (findings without a sample are left out). */
export function summarizeLocalisation(samples: LocalisationSample[], size: number): FindingLocalisation[] {
  const out: FindingLocalisation[] = [];
  FINDINGS.forEach((finding, k) => {
    const mine = samples.filter((s) => s.finding === k);
    if (mine.length === 0) return;
    const bit = 1 << k;
    let mass = 0;
    let chance = 0;
    let hits = 0;
    for (const s of mine) {
      mass += massInside(s.map, s.regions, bit);
      chance += areaShare(s.regions, bit);
      hits += pointingHit(s.map, s.regions, size, { bits: bit });
    }
    const n = mine.length;
    out.push({
      finding,
      images: n,
      massInside: mass / n,
      chance: chance / n,
      pointingRate: hits / n,
      enrichment: chance > 0 ? mass / chance : Number.NaN,
    });
  });
  return out;
}

/** Explains finding `k` for one normalised image [3,S,S] (a classifier's or the zero-shot logit). */
export type ExplainFinding = (x: Float32Array, finding: number) => Promise<Attribution>;

/**
 * Explains every finding drawn in each synthetic image (those with a regions sidecar) and summarises.
 * `preprocess` must be the settings the model was run with (size, resize mode, mean/std).
 */
export async function syntheticLocalisation(
  imagePaths: string[],
  explain: ExplainFinding,
  options: { preprocess?: PreprocessOptions } = {},
): Promise<{ samples: LocalisationSample[]; summary: FindingLocalisation[]; size: number }> {
  const samples: LocalisationSample[] = [];
  let size = 0;
  for (const path of imagePaths) {
    const src = await readRegions(path);
    if (!src) continue;
    const img = await preprocess(path, null, { preprocess: options.preprocess ?? {} });
    size = img.geometry.outW;
    const regions = sampleMask(src.data, img.geometry);
    for (let k = 0; k < FINDINGS.length; k++) {
      if (!regions.some((v) => v & (1 << k))) continue; // drawn, but lost by the resampling
      const a = await explain(img.original, k);
      samples.push({ finding: k, map: a.map.subarray(0, size * size), regions });
    }
  }
  return { samples, summary: summarizeLocalisation(samples, size), size };
}
