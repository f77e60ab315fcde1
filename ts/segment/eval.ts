/**
 * Segmenter vs CheXmask on a split of the cache: Dice and HD95 (model-grid pixels, see metrics.ts) per
 * structure against CheXmask's masks rasterised on the same grid, next to CheXmask's own quality
 * estimate for the same images (Dice RCA (Mean): reverse classification accuracy, its per-image
 * estimate of the Dice of its masks, read from the CheXmask CSV the cache was built from).
 */
import { existsSync } from 'node:fs';
import { joinChexmask } from '../data/chexmask.js';
import type { Split } from '../data/mimic.js';
import type { Cache } from '../images/cache.js';
import type { Segmenter } from '../model/segmenter.js';
import { STRUCTURES, type Structure, type Summary, summarize } from './metrics.js';
import { maskedIndices, scoreSplit } from './train.js';

export interface SegEvalReport {
  split: Split;
  images: number;
  /** Per structure, predicted vs CheXmask on the model grid. */
  dice: Record<Structure, Summary>;
  /** Same, in model-grid pixels (S×S, S = imageSize). */
  hd95: Record<Structure, Summary>;
  gridSize: number;
  /** CheXmask's Dice RCA (Mean) over the same images; null without the CSV. */
  chexmaskDiceRca: (Summary & { csv: string }) | null;
  /** The CSV cache.json records when it is no longer there (moved or deleted since the cache was built). */
  chexmaskCsvMissing?: string;
}

export async function evaluateSegmenter(
  seg: Segmenter,
  cache: Cache,
  o: { split?: Split; batchSize?: number; chexmaskCsv?: string | null; maxImages?: number } = {},
): Promise<SegEvalReport> {
  const split = o.split ?? 'test';
  let idx = maskedIndices(cache, split);
  if (o.maxImages !== undefined) idx = idx.slice(0, o.maxImages);
  if (idx.length === 0) throw new Error(`the cache has no ${split} rows with CheXmask anatomy`);
  const scores = await scoreSplit(seg, cache, idx, o.batchSize ?? 16);
  const dice = {} as Record<Structure, Summary>;
  const hd = {} as Record<Structure, Summary>;
  for (const st of STRUCTURES) {
    dice[st] = summarize(scores.dice[st]);
    hd[st] = summarize(scores.hd95[st]);
  }
  let rca: SegEvalReport['chexmaskDiceRca'] = null;
  // the cache no longer needs its CSV (many GB): a recorded one that has gone leaves the RCA out, so a
  // finished training still writes its evaluation; a CSV the caller names is read strictly
  const recorded = o.chexmaskCsv ? null : cache.build.chexmask;
  const missing = recorded && !existsSync(recorded) ? recorded : undefined;
  const csv = o.chexmaskCsv ?? (missing ? null : recorded);
  if (csv) {
    const ids = idx.map((i) => cache.entries[i]!.dicomId);
    const { rows } = await joinChexmask(csv, ids, { minDice: 0 });
    const values = ids.map((id) => rows.get(id)?.diceMean ?? Number.NaN);
    rca = { ...summarize(values), csv };
  }
  const report: SegEvalReport = {
    split,
    images: idx.length,
    dice,
    hd95: hd,
    gridSize: cache.size,
    chexmaskDiceRca: rca,
  };
  if (missing) report.chexmaskCsvMissing = missing;
  return report;
}

/** The report as a small text table (one line per structure). */
export function formatSegEval(r: SegEvalReport): string {
  const f = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '—');
  const lines = [
    `Segmenter vs CheXmask on ${r.images} ${r.split} images (${r.gridSize}×${r.gridSize} grid)`,
    'structure   Dice mean (sd)    HD95 px median (mean)',
  ];
  for (const st of STRUCTURES)
    lines.push(
      `${st.padEnd(11)} ${f(r.dice[st].mean)} (${f(r.dice[st].sd)})     ${f(r.hd95[st].median, 1)} (${f(r.hd95[st].mean, 1)})`,
    );
  if (r.chexmaskCsvMissing)
    lines.push(
      `CheXmask's own Dice RCA: not shown, the CSV cache.json records is gone (${r.chexmaskCsvMissing}); pass --chexmask`,
    );
  if (r.chexmaskDiceRca)
    lines.push(
      `CheXmask's own Dice RCA (Mean) on these images: ${f(r.chexmaskDiceRca.mean)} (sd ${f(r.chexmaskDiceRca.sd)}, n ${r.chexmaskDiceRca.n})`,
    );
  return lines.join('\n');
}
