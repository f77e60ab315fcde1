/**
 * What `synthesize` may delete or overwrite: only what an earlier synth wrote. Its paths
 * (out/<dataset>/, out/chexmask/<CheXmask file>) are where the real datasets and CheXmask's CSVs go,
 * so a tree without synth's marker, or a CheXmask CSV whose bytes synth did not write, is refused
 * unless the caller forces it.
 */

import { readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { sha256File } from '../common/hash.js';
import { writeFileAtomicAsync } from '../common/io.js';
import type { DatasetName } from '../data/datasets/names.js';

/** The file synth writes into every dataset tree it makes (out/<dataset>/). */
export const SYNTH_MARKER = '.cxrmask-synth.json';

/** What the marker records: the layout, and the CheXmask CSV synth last wrote for it. */
export interface SynthMarker {
  writer: 'cxrmask synth';
  dataset: DatasetName;
  chexmaskCsv?: { size: number; sha256: string };
}

function readJsonQuietly(path: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

function readMarker(tree: string, dataset: DatasetName): SynthMarker | null {
  const m = readJsonQuietly(join(tree, SYNTH_MARKER));
  return m?.writer === 'cxrmask synth' && m.dataset === dataset ? (m as unknown as SynthMarker) : null;
}

/** Trees written before the marker existed: out/synth-summary.json names the dataset synth last wrote. */
function summaryNames(out: string, dataset: DatasetName): boolean {
  const s = readJsonQuietly(join(out, 'synth-summary.json'));
  return s !== null && (s.dataset ?? 'mimic') === dataset;
}

const statOrNull = (path: string) => stat(path).catch(() => null);

/**
 * Refuses to touch `tree` (out/<dataset>) or `csv` (its CheXmask file) unless synth wrote them or they
 * are absent (an empty folder counts as absent).
 * @returns the CSV record to keep in the new marker until the CSV is written again.
 * @throws {ConfigError} naming each path synth did not write.
 */
export async function checkSynthTargets(
  out: string,
  dataset: DatasetName,
  tree: string,
  csv: string,
): Promise<SynthMarker['chexmaskCsv']> {
  const problems: string[] = [];
  const marker = readMarker(tree, dataset);
  const legacy = marker === null && summaryNames(out, dataset);
  const treeStat = await statOrNull(tree);
  if (treeStat && !treeStat.isDirectory()) problems.push(`${tree} exists and is not a folder`);
  else if (treeStat && !marker && !legacy && (await readdir(tree)).length > 0)
    problems.push(`${tree} exists and was not written by cxrmask synth (it has no ${SYNTH_MARKER})`);
  const csvStat = await statOrNull(csv);
  let kept: SynthMarker['chexmaskCsv'];
  if (csvStat) {
    const known = marker?.chexmaskCsv;
    const ours =
      csvStat.isFile() &&
      (legacy || (known !== undefined && known.size === csvStat.size && known.sha256 === sha256File(csv)));
    if (!ours) problems.push(`${csv} exists and was not written by cxrmask synth`);
    else kept = known;
  }
  if (problems.length)
    throw new ConfigError(
      `synth would delete or overwrite what it did not write: ${problems.join('; ')}. Choose another --out, or pass --force (option force) to replace them`,
    );
  return kept;
}

/** Writes the tree's marker; with `csv`, records that file's size and digest as synth's. */
export async function markSynthTree(
  tree: string,
  dataset: DatasetName,
  csv: { path: string } | SynthMarker['chexmaskCsv'],
): Promise<void> {
  let chexmaskCsv: SynthMarker['chexmaskCsv'];
  if (csv && 'path' in csv) chexmaskCsv = { size: (await stat(csv.path)).size, sha256: sha256File(csv.path) };
  else chexmaskCsv = csv;
  const marker: SynthMarker = { writer: 'cxrmask synth', dataset, ...(chexmaskCsv ? { chexmaskCsv } : {}) };
  await writeFileAtomicAsync(join(tree, SYNTH_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
}
