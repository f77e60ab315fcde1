/** cxrmask public library API. */
export { FINDINGS, type Finding, NUM_LABELS } from './labels.js';
export {
  chexmaskRowFor,
  type FindingScores,
  MaskingPredictor,
  type Prediction,
  type PredictorKind,
  type PredictorOptions,
} from './service/index.js';
export {
  ConfigSchema,
  type ExperimentConfig,
  loadConfig,
  parseConfig,
  DEMO,
  demoConfig,
  VARIANTS,
  type Variant,
} from './experiment/config.js';
export { type Results, type RunOptions, reevaluate, runExperiment } from './experiment/run.js';
export { realBackend, prepareData } from './experiment/backend-real.js';
export type { Backend } from './experiment/backend.js';
export * as metrics from './experiment/metrics.js';
export { writeReports } from './report/index.js';
