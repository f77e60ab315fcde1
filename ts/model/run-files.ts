/**
 * The files of a run folder that say where its trained models came from: `config.json` names the
 * exported model folder (model.dir), `data.json` the data the run used and the model folder's
 * fingerprint when it started (ts/experiment/fingerprint.ts writes it). Here, below the experiment, so
 * that a service can open a run's cell without it.
 */
import { join } from 'node:path';
import { readJson } from '../common/io.js';

export const RUN_CONFIG_FILE = 'config.json';
export const RUN_DATA_FILE = 'data.json';

/**
 * What identifies the data a run used: the cache key and digest, the entries and the CheXmask join; a
 * resume or a re-evaluation checks it.
 */
export interface DataFingerprint {
  /** The cache's settings key (folder name), null for a cache without one. */
  cacheKey: string | null;
  /** Where the cache was opened (not compared: a moved cache with the same content is the same data). */
  cacheDir: string | null;
  /** Digest over entries.jsonl and every shard's SHA-256 (images + labels), null if the cache has none. */
  cacheDigest: string | null;
  entries: number;
  /** SHA-256 over every row's dicomId, split, labels and label mask, in cache order. */
  entriesDigest: string;
  /** Join settings the cache was built with (minDice, label policy, requireMask, CheXmask file). */
  join: Record<string, unknown> | null;
}

/** The exported model folder a run started with (ts/model/run-model.ts runModel). */
export interface RunModel {
  /** model.dir, made absolute. */
  dir: string;
  /** sha256 of model.json and of the weights file, `<model.json>:<weights>`; null: no model.json there. */
  sha256: string | null;
}

/** `<run>/data.json`: the fingerprint plus the data summaries recorded when the run started. */
export interface RunData {
  fingerprint: DataFingerprint;
  recordedAt: string;
  /** The data facts results.json shows under `data` (index/cache summaries), kept for resumed runs. */
  summaries: Record<string, unknown>;
  /** The model the run started with; absent in runs recorded before it was (their resume records it). */
  model?: RunModel;
}

export function readRunData(runDir: string): RunData | null {
  return readJson<RunData>(join(runDir, RUN_DATA_FILE));
}

/** The model folder a run's config.json names (model.dir), or null. */
export function readRunModelDir(runDir: string): string | null {
  const dir = readJson<{ model?: { dir?: unknown } }>(join(runDir, RUN_CONFIG_FILE))?.model?.dir;
  return typeof dir === 'string' && dir !== '' ? dir : null;
}
