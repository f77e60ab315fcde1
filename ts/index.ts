/**
 * The cxrmask library: everything `import … from 'cxrmask'` gives. `ts/index.ts` is the public API;
 * this reference (docs/api/) is generated from it and its doc comments by `npm run docs`. What the
 * types do not say (array layouts, threading, copies, errors, lifetimes) is in docs/contracts.md.
 *
 * @packageDocumentation
 */

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
export type { Results } from './experiment/results.js';
export { rankBatch, stepsPerEpoch } from './experiment/sampler.js';
export { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, type ImageLimits } from './images/input.js';
export { preprocess } from './images/preprocess.js';
export type {
  ClassifierLike,
  ClipLike,
  SegmenterBackendLike,
  StepLoss,
  TokenizerLike,
} from './model/backend.js';
// Data parallel over torch.distributed's c10d (docs/distributed.md).
export { type DistEnv, readDistEnv } from './model/dist-env.js';
export { ProcessGroup, type ProcessGroupOptions } from './model/process-group.js';
export type { DataFingerprint } from './model/run-files.js';
export { writeReports } from './report/write.js';
export type { RunResult } from './run/assemble.js';

// Every error class thrown on purpose (ts/common/errors.ts).

// Types that appear in the signatures above, exported so that callers can name them and the API
// reference (docs/api/, `npm run docs`) can link them.
export type { StopSignal } from './common/interrupt.js';
export { FINDINGS, type Finding, NUM_LABELS } from './common/labels.js';
export type { JoinOptions, JoinSummary } from './data/chexmask.js';
export type { Landmarks, Region } from './data/landmarks.js';
export type { Split } from './data/mimic.js';
export type { ModelAttribution } from './experiment/attribution-measure.js';
export type { Backend, CacheEntryLike, CacheLike } from './experiment/backend.js';
export { prepareData, prepareTestData, realBackend } from './experiment/backend-real.js';
export type { TestVariant } from './experiment/config.js';
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
export type { MetricOverrides } from './experiment/eval-settings.js';
export type {
  DiffRow,
  EvalCell,
  Evaluation,
  GroupKey,
  MeanSdT,
  SummaryCell,
} from './experiment/evaluate.js';

export type { GridEvent } from './experiment/grid.js';
export type { GridAttribution } from './experiment/grid-attribution.js';
/**
 * Multi-label metrics over the five findings (AUROC, thresholds, accuracy, F1, sensitivity,
 * specificity, paired bootstrap intervals), as the run computes them (docs/experiments.md).
 */
export * as metrics from './experiment/metrics.js';
export type { SegmenterQuality } from './experiment/segmenter-quality.js';
export type { EpochRecord, TrainProgress } from './experiment/train.js';
export type { ChexmaskRecord, PreprocessResult, ResolvedPreprocess } from './images/preprocess.js';
export type { Geometry } from './masks/geometry.js';
export type { RegionMasks } from './masks/overlay.js';
// Attribution maps (docs/attribution.md): options and results of Classifier/ClipModel.attribute.
export {
  ATTRIBUTION_METHOD_NAMES,
  ATTRIBUTION_METHODS,
  type Attribution,
  type AttributionMethod,
  type AttributionOptions,
} from './model/attribution.js';
// Model layer over the LibTorch addon (docs/native.md).
export { Classifier, type ClassifierCreateOptions, type ClassifierOptions } from './model/classifier.js';
export { type ClipLoadOptions, ClipModel } from './model/clip.js';
export { diagnostics } from './model/diagnostics.js';
// One model of any kind (zero-shot, linear probe, fine-tuned), the kind read from its checkpoint.
export { MODEL_KINDS, type ModelKind, type TrainedKind } from './model/kinds.js';
export type { ModelMeta, SegmenterMeta } from './model/meta.js';
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
export type { NativeClassifierInfo, NativeSegmenterInfo, NativeStepResult } from './native.js';
export { type DeviceSpec, type Diagnostics, setTf32, setThreads } from './native.js';

export type { ReportFiles } from './report/write.js';
export { reevaluate } from './run/reevaluate.js';

export { type RunOptions, runExperiment } from './run/run.js';
export { type OpenSegmenterOptions, openSegmenter } from './segment/open.js';
export type { ChexmaskIndexSummary } from './service/chexmask-index.js';
export { ChexmaskIndex, type ChexmaskIndexOptions } from './service/chexmask-index.js';
export { createServer, HttpError, type ServiceOptions } from './service/http.js';
export type { MaskSource, PredictExtras, PreprocessedPair, PreprocessFn } from './service/predictor.js';
export {
  chexmaskRowFor,
  type FindingScores,
  MaskingPredictor,
  type Prediction,
  type PredictorKind,
  type PredictorOptions,
} from './service/predictor.js';
export { closeOnSignals, type ShutdownOptions } from './service/shutdown.js';
