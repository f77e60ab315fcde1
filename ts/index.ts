/** cxrmask public library API. */

// Data-layer helpers a service typically needs next to the predictor.
export { type ChexmaskRow, imagePath, joinChexmask, preprocess } from './data/index.js';
export type { Backend } from './experiment/backend.js';
export { prepareData, realBackend } from './experiment/backend-real.js';
export {
  ConfigSchema,
  DEMO,
  demoConfig,
  type ExperimentConfig,
  loadConfig,
  parseConfig,
  VARIANTS,
  type Variant,
} from './experiment/config.js';
export * as metrics from './experiment/metrics.js';
export { type Results, type RunOptions, reevaluate, runExperiment } from './experiment/run.js';
export { FINDINGS, type Finding, NUM_LABELS } from './labels.js';
export { writeReports } from './report/index.js';
export { ChexmaskIndex, type ChexmaskIndexOptions } from './service/chexmask-index.js';
export { createServer, HttpError, type ServiceOptions } from './service/http.js';
export {
  chexmaskRowFor,
  type FindingScores,
  MaskingPredictor,
  type Prediction,
  type PredictorKind,
  type PredictorOptions,
} from './service/index.js';
export { closeOnSignals, type ShutdownOptions } from './service/shutdown.js';
