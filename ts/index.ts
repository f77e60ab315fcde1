/** cxrmask public library API: what README and docs/native.md present, and nothing else. */

// Data-layer helpers a service typically needs next to the predictor.

export {
  ConfigError,
  DataError,
  type DataErrorWhere,
  InterruptedError,
  NativeError,
  type NativeErrorCode,
} from './common/errors.js';
export { type ChexmaskRow, joinChexmask } from './data/chexmask.js';
export { imagePath } from './data/mimic.js';
export { rankBatch, stepsPerEpoch } from './experiment/sampler.js';
export { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, type ImageLimits } from './images/input.js';
export { preprocess } from './images/preprocess.js';
// Data parallel over torch.distributed's c10d (docs/distributed.md).
export { type DistEnv, readDistEnv } from './model/dist-env.js';
export { ProcessGroup, type ProcessGroupOptions } from './model/process-group.js';

// Every error class thrown on purpose (ts/common/errors.ts).

export { FINDINGS, type Finding, NUM_LABELS } from './common/labels.js';
export type { Backend } from './experiment/backend.js';
export { prepareData, prepareTestData, realBackend } from './experiment/backend-real.js';
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
export {
  type CrossDatasetResult,
  type PrepareTestData,
  type TestDatasetSpec,
  testDatasets,
} from './experiment/cross-dataset.js';
export * as metrics from './experiment/metrics.js';
// Attribution maps (docs/attribution.md): options and results of Classifier/ClipModel.attribute.
export {
  ATTRIBUTION_METHOD_NAMES,
  ATTRIBUTION_METHODS,
  type Attribution,
  type AttributionMethod,
  type AttributionOptions,
} from './model/attribution.js';
// Model layer over the LibTorch addon (docs/native.md).
export { Classifier, type ClassifierCreateOptions } from './model/classifier.js';
export { type ClipLoadOptions, ClipModel } from './model/clip.js';
export { type Diagnostics, diagnostics } from './model/diagnostics.js';
// One model of any kind (zero-shot, linear probe, fine-tuned), the kind read from its checkpoint.
export { MODEL_KINDS, type ModelKind, type TrainedKind } from './model/kinds.js';
export { type OpenedModel, type OpenModelOptions, openModel } from './model/open.js';
export { DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT } from './model/prompts.js';
export {
  hostBytes,
  type ImageInput,
  type PixelSpec,
  type RecordBatch,
  recordsToImages,
} from './model/records.js';
export {
  Segmenter,
  type SegmenterLike,
  type SegmenterLoadOptions,
  type SegmentStep,
} from './model/segmenter.js';
export { loadTokenizer, type TextTokenizer } from './model/tokenizer.js';
export { type DeviceSpec, setTf32, setThreads } from './native.js';
export { writeReports } from './report/index.js';
export { type Results, type RunOptions, reevaluate, runExperiment } from './run/run.js';
export { type OpenSegmenterOptions, openSegmenter } from './segment/open.js';
export { ChexmaskIndex, type ChexmaskIndexOptions } from './service/chexmask-index.js';
export { createServer, HttpError, type ServiceOptions } from './service/http.js';
export {
  chexmaskRowFor,
  type FindingScores,
  MaskingPredictor,
  type Prediction,
  type PredictorKind,
  type PredictorOptions,
} from './service/predictor.js';
export { closeOnSignals, type ShutdownOptions } from './service/shutdown.js';
