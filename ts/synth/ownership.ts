/**
 * What `synthesize` may delete or overwrite: only what an earlier synth wrote. Its paths
 * (out/<dataset>/, out/chexmask/<CheXmask file>) are where the real datasets and CheXmask's CSVs go,
 * so a tree without synth's marker, or a CheXmask CSV whose bytes synth did not write, is refused
 * unless the caller forces it. The evidence lives in the tree itself: a file beside it (a summary, a
 * demo stamp) outlives the tree it described when someone puts real data in its place.
 */

import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { sha256FileAsync } from '../common/hash.js';
import { readJsonFile, writeFileAtomicAsync } from '../common/io.js';
import type { DatasetName } from '../data/datasets/names.js';

/** The file synth writes into every dataset tree it makes (out/<dataset>/). */
export const SYNTH_MARKER = '.cxrmask-synth.json';

/** What the marker records: the layout, and the CheXmask CSV synth last wrote for it. */
export interface SynthMarker {
  writer: 'cxrmask synth';
  dataset: DatasetName;
  chexmaskCsv?: { size: number; sha256: string };
}

/**
 * The tree's marker, or null when it has none or an unusable one (a folder, a FIFO, a huge file, not
 * a JSON object): then the tree is not provably synth's.
 */
function readMarker(tree: string, dataset: DatasetName): SynthMarker | null {
  let m: Record<string, unknown>;
  try {
    m = readJsonFile(join(tree, SYNTH_MARKER), 'synth marker', { maxBytes: 64 << 10 });
  } catch {
    return null;
  }
  return m['writer'] === 'cxrmask synth' && m['dataset'] === dataset ? (m as unknown as SynthMarker) : null;
}

const statOrNull = (path: string) => stat(path).catch(() => null);

/** What synth's own CLI and API tell a refused caller to do. */
const SYNTH_ADVICE = 'Choose another --out, or pass --force (option force) to replace them';

/**
 * Refuses to touch `tree` (out/<dataset>) or `csv` (its CheXmask file) unless synth wrote them or they
 * are absent (an empty folder counts as absent). Only the tree's marker proves that: a tree without
 * one, trees older synths wrote included, is refused, and `advice` says how to replace it.
 * @returns the CSV record to keep in the new marker until the CSV is written again.
 * @throws {ConfigError} naming each path synth did not write.
 */
export async function checkSynthTargets(
  dataset: DatasetName,
  tree: string,
  csv: string,
  advice = SYNTH_ADVICE,
): Promise<SynthMarker['chexmaskCsv']> {
  const problems: string[] = [];
  const marker = readMarker(tree, dataset);
  const treeStat = await statOrNull(tree);
  if (treeStat && !treeStat.isDirectory()) problems.push(`${tree} exists and is not a folder`);
  else if (treeStat && !marker && (await readdir(tree)).length > 0)
    problems.push(
      `${tree} exists and was not written by cxrmask synth (it has no ${SYNTH_MARKER}; a tree an older synth wrote has none either and must be replaced by force once)`,
    );
  const csvStat = await statOrNull(csv);
  let kept: SynthMarker['chexmaskCsv'];
  if (csvStat) {
    const known = marker?.chexmaskCsv;
    const ours =
      csvStat.isFile() &&
      known !== undefined &&
      known.size === csvStat.size &&
      known.sha256 === (await sha256FileAsync(csv));
    if (!ours) problems.push(`${csv} exists and was not written by cxrmask synth`);
    else kept = known;
  }
  if (problems.length)
    throw new ConfigError(
      `synth would delete or overwrite what it did not write: ${problems.join('; ')}. ${advice}`,
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
  if (csv && 'path' in csv)
    chexmaskCsv = { size: (await stat(csv.path)).size, sha256: await sha256FileAsync(csv.path) };
  else chexmaskCsv = csv;
  const marker: SynthMarker = { writer: 'cxrmask synth', dataset, ...(chexmaskCsv ? { chexmaskCsv } : {}) };
  await writeFileAtomicAsync(join(tree, SYNTH_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
}
