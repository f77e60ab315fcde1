/**
 * What each cell was computed with. When a cell starts, the part of the experiment config its outputs
 * depend on is recorded next to them (`cells/<id>/cell.json`, `cells/zeroshot.cell.json`); `--resume`
 * and `eval` compare the run's config.json with every record and refuse a difference, naming the cell
 * and the fields, so results.json never reports settings its cells were not trained with. Settings
 * that do not change a cell's predictions (paths, device, batch size of feature extraction, checkpoint
 * retention, the unreadable-image tolerance, evaluation-only metrics) are left out: changing them on
 * resume is allowed.
 */

import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { readJson, writeJsonAtomic } from '../common/io.js';
import { setupOfCell } from './cells.js';
import type { ExperimentConfig } from './config.js';

export interface CellRecord {
  id: string;
  /** The config subset (cellConfig) the cell's outputs depend on. */
  config: Record<string, unknown>;
  recordedAt: string;
}

export function cellRecordPath(runDir: string, id: string): string {
  return id === 'zeroshot'
    ? join(runDir, 'cells', 'zeroshot.cell.json')
    : join(runDir, 'cells', id, 'cell.json');
}

/** The settings cell `id` ('zeroshot', 'lp-…', 'jft-…') depends on. */
export function cellConfig(config: ExperimentConfig, id: string): Record<string, unknown> {
  const { views, uncertain, blank, requirePositive, minDice, readerRule } = config.data;
  const common = {
    // readerRule changes vindr's labels; recorded only when not the default, so that cells recorded
    // before it existed (majority) still match
    data: {
      views,
      uncertain,
      requirePositive,
      minDice,
      ...(readerRule !== 'majority' ? { readerRule } : {}),
      // blank changes the labels; recorded only when not the default, as readerRule
      ...(blank !== 'zeros' ? { blank } : {}),
    },
    model: { dir: config.model.dir },
    segmenter: config.segmenter,
  };
  const setup = setupOfCell(id);
  if (setup === 'zeroshot') {
    const { prompt, negativePrompt } = config.zeroshot;
    return { ...common, zeroshot: { prompt, negativePrompt } };
  }
  const { selection, thresholdRule, fixedThreshold } = config.metrics;
  // the validation accuracy (threshold rule) picks the best epoch only when it is the selection metric
  const metrics =
    selection === 'meanLabelAccuracy'
      ? { selection, thresholdRule, ...(thresholdRule === 'fixed' ? { fixedThreshold } : {}) }
      : { selection };
  const section = setup === 'linear-probe' ? 'linearProbe' : 'finetune';
  const { enabled, keepCheckpoints, maxUnreadableShare, ...training } = config[section];
  void enabled;
  void keepCheckpoints;
  void maxUnreadableShare;
  return { ...common, metrics, [section]: training };
}

function flatten(v: unknown, prefix: string, out: Map<string, string>): Map<string, string> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, JSON.stringify(v ?? null));
  return out;
}

/** `field recorded → now` for every field that differs. */
export function configChanges(recorded: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const a = flatten(recorded, '', new Map());
  const b = flatten(now, '', new Map());
  const out: string[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()]))
    if (a.get(k) !== b.get(k)) out.push(`${k} ${a.get(k) ?? '(absent)'} → ${b.get(k) ?? '(absent)'}`);
  return out;
}

export function readCellRecord(runDir: string, id: string): CellRecord | null {
  return readJson<CellRecord>(cellRecordPath(runDir, id));
}

/** Records what cell `id` is computed with (once: an existing record is the cell's, and is kept). */
export function recordCell(runDir: string, id: string, config: ExperimentConfig): void {
  if (readCellRecord(runDir, id)) return;
  const r: CellRecord = { id, config: cellConfig(config, id), recordedAt: new Date().toISOString() };
  writeJsonAtomic(cellRecordPath(runDir, id), r);
}

/**
 * Throws a ConfigError listing every cell of `ids` whose recorded settings differ from `config`.
 * Cells without a record (none started yet, or written before records existed) are not checked.
 */
export function checkCellConfigs(
  runDir: string,
  config: ExperimentConfig,
  ids: readonly string[],
  action: string,
): void {
  const problems: string[] = [];
  for (const id of ids) {
    const r = readCellRecord(runDir, id);
    if (!r) continue;
    const changes = configChanges(r.config, cellConfig(config, id));
    if (changes.length) problems.push(`  - ${id} (${cellRecordPath(runDir, id)}): ${changes.join('; ')}`);
  }
  if (problems.length)
    throw new ConfigError(
      `cannot ${action}: ${join(runDir, 'config.json')} differs from what these cells were computed with (recorded → now):\n${problems.join('\n')}\nRestore those settings in config.json, or start a new run (a changed setting needs the cells trained again).`,
    );
}
