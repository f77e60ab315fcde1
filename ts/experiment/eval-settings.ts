/**
 * `cxrmask eval`'s metric settings (threshold rule, bootstrap, primary metric…), kept apart from
 * config.json in `<run>/eval-settings.json`. config.json stays what the cells were trained with, so
 * `--resume` and a later `eval` compare the cell records with training-time settings (under selection
 * meanLabelAccuracy the threshold rule also picked best.ckpt); the overrides still apply to every
 * later scoring of the run (later `eval`, the results of a `--resume`), and results.json reports the
 * settings it was scored with (config.metrics, and run.evaluationOverrides).
 */
import { join } from 'node:path';
import { readJson, writeJsonAtomic } from '../common/io.js';
import type { ExperimentConfig } from './config.js';

/** Metric settings that `reevaluate` applies over the run's own config. */
export type MetricOverrides = Partial<ExperimentConfig['metrics']>;

interface EvalSettings {
  metrics: MetricOverrides;
  updatedAt: string;
}

const settingsPath = (runDir: string) => join(runDir, 'eval-settings.json');

/** The metric overrides earlier `eval`s of the run left ({} when none). */
export function readEvalOverrides(runDir: string): MetricOverrides {
  return readJson<EvalSettings>(settingsPath(runDir))?.metrics ?? {};
}

export function writeEvalOverrides(runDir: string, metrics: MetricOverrides): void {
  writeJsonAtomic(settingsPath(runDir), { metrics, updatedAt: new Date().toISOString() });
}

/** `config` scored with `overrides` (training settings untouched). */
export function withMetricOverrides(config: ExperimentConfig, overrides: MetricOverrides): ExperimentConfig {
  return Object.keys(overrides).length ? { ...config, metrics: { ...config.metrics, ...overrides } } : config;
}
