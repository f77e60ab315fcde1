/**
 * Stored predictions (a cell's result.json, cells/zeroshot.json) are read back by `--resume` and
 * `eval` and scored against the cache's labels row by row, so a file that does not fit the split it
 * claims would shift or corrupt every metric silently. Before use each prediction set is checked:
 * `probs` holds exactly rows × labels entries for the split, each a number in [0, 1] or null (no
 * prediction) only for a row listed in `failed`; `failed` lists rows of that split. A bad file is a
 * DataError naming the file and the field; deleting it makes `--resume` compute the cell again.
 */
import { DataError } from '../common/errors.js';
import { NUM_LABELS } from '../common/labels.js';
import { ZS_PROTOCOLS } from '../model/zeroshot.js';
import { PREDICTED, VARIANTS } from './config.js';

const SPLITS = ['validate', 'test'] as const;

/** The rows of each split (grid.ts SplitData; its types are not imported: grid.ts imports this module). */
type SplitRows = Record<(typeof SPLITS)[number], number[]>;

function checkPredGrid(file: string, field: string, g: unknown, sd: SplitRows): void {
  const bad = (f: string, msg: string) =>
    new DataError(
      'bad-predictions',
      `${msg}; these predictions do not fit the run's data (delete the file to compute them again with --resume)`,
      { file, field: f },
    );
  if (g === null || typeof g !== 'object') throw bad(field, 'missing');
  for (const split of SPLITS) {
    const s = (g as Record<string, unknown>)[split];
    if (s === null || typeof s !== 'object') throw bad(`${field}.${split}`, 'missing');
    const rows = sd[split];
    const inSplit = new Set(rows);
    for (const v of [...VARIANTS, PREDICTED]) {
      const set = (s as Record<string, unknown>)[v];
      const at = `${field}.${split}.${v}`;
      if (set === undefined && v === PREDICTED) continue;
      if (set === null || typeof set !== 'object') throw bad(at, 'missing');
      const { probs, failed } = set as { probs: unknown; failed: unknown };
      if (!Array.isArray(failed)) throw bad(`${at}.failed`, 'not an array');
      for (const r of failed)
        if (!Number.isInteger(r) || !inSplit.has(r as number))
          throw bad(`${at}.failed`, `${JSON.stringify(r)} is not a ${split} row of the cache`);
      if (!Array.isArray(probs)) throw bad(`${at}.probs`, 'not an array');
      const want = rows.length * NUM_LABELS;
      if (probs.length !== want)
        throw bad(
          `${at}.probs`,
          `${probs.length} values, expected ${want} (${rows.length} ${split} rows × ${NUM_LABELS} labels)`,
        );
      const failedRows = new Set(failed as number[]);
      for (let i = 0; i < probs.length; i++) {
        const p = probs[i];
        if (p === null && failedRows.has(rows[Math.floor(i / NUM_LABELS)]!)) continue;
        if (typeof p !== 'number' || !(p >= 0 && p <= 1))
          throw bad(
            `${at}.probs[${i}]`,
            `${JSON.stringify(p)} is not a probability in [0, 1]${p === null ? ' (null only for a row listed in failed)' : ''}`,
          );
      }
    }
  }
}

/** Checks a trained cell's result.json read back from `file` against the split rows. */
export function checkCellResult(
  file: string,
  c: { id?: unknown; predictions?: unknown } | null,
  id: string,
  sd: SplitRows,
): void {
  if (c === null || typeof c !== 'object' || c.id !== id)
    throw new DataError('bad-predictions', `expected the result of cell ${id}`, { file, field: 'id' });
  checkPredGrid(file, 'predictions', c.predictions, sd);
}

/** Checks cells/zeroshot.json read back from `file`: both protocols, every split and variant. */
export function checkZeroShotResult(file: string, z: { protocols?: unknown } | null, sd: SplitRows): void {
  const protocols = z?.protocols;
  if (protocols === null || typeof protocols !== 'object')
    throw new DataError('bad-predictions', 'missing', { file, field: 'protocols' });
  for (const p of ZS_PROTOCOLS)
    checkPredGrid(file, `protocols.${p}`, (protocols as Record<string, unknown>)[p], sd);
}
