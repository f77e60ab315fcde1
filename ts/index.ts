/**
 * The cxrmask library: everything `import … from 'cxrmask'` gives. `ts/index.ts` is the public API;
 * this reference (docs/api/) is generated from it and its doc comments by `npm run docs`. What the
 * types do not say (array layouts, threading, copies, errors, lifetimes) is in docs/contracts.md.
 * The exports below follow the floors of docs/architecture.md, lowest first.
 *
 * @packageDocumentation
 */

// biome-ignore-all assist/source/organizeImports: the package root is grouped by floor (docs/architecture.md), not sorted

// Every error class thrown on purpose, the five findings, the stop signal, summary statistics.
export {
  ConfigError,
  DataError,
  type DataErrorWhere,
  InterruptedError,
  NativeError,
  type NativeErrorCode,
} from './common/errors.js';
export type { Steps, StopSignal } from './common/interrupt.js';
export type { LinkPolicy } from './common/files.js';
export { FINDINGS, type Finding, NUM_LABELS } from './common/labels.js';
/**
 * Summary statistics of the metrics and the bootstrap: the mean of the finite values (`nanMean`), a
 * quantile of an ascending array by linear interpolation (`quantile`), and the mean with the sample
 * standard deviation (`meanSd`).
 */
export * as stats from './common/stats.js';

// The addon: devices, threads, TF32, what the native objects report.
export type {
  NativeClassifierHeader,
  NativeClassifierInfo,
  NativeSegmenterInfo,
  NativeStepResult,
} from './native.js';
export { type DeviceSpec, type Diagnostics, setTf32, setThreads } from './native.js';

// Data-layer helpers a service typically needs next to the predictor.
export {
  type ChexmaskRow,
  chexmaskRowFor,
  type JoinOptions,
  type JoinSummary,
  joinChexmask,
} from './data/chexmask.js';
export { ChexmaskRecords, type RecordRange } from './data/chexmask-records.js';
export type { Landmarks, Region } from './data/landmarks.js';
export { imagePath, type Split } from './data/mimic.js';
export type { Geometry } from './masks/geometry.js';
export type { RegionMasks } from './masks/overlay.js';

// Model layer over the LibTorch addon (docs/native.md).
// Attribution maps (docs/attribution.md): options and results of Classifier/ClipModel.attribute.
export {
  ATTRIBUTION_METHOD_NAMES,
  ATTRIBUTION_METHODS,
  type Attribution,
  type AttributionMethod,
  type AttributionOptions,
} from './model/attribution.js';
export type {
  CheckpointHeader,
  ClassifierLike,
  ClipLike,
  ModelBackend,
  SegmenterBackendLike,
  StepLoss,
  TokenizerLike,
} from './model/backend.js';
export { Classifier, type ClassifierCreateOptions, type ClassifierOptions } from './model/classifier.js';
export { type ClipLoadOptions, ClipModel } from './model/clip.js';
export { diagnostics } from './model/diagnostics.js';
// One model of any kind (zero-shot, linear probe, fine-tuned), the kind read from its checkpoint.
export { MODEL_KINDS, type ModelKind, type TrainedKind } from './model/kinds.js';
export { type OpenedModel, type OpenModelOptions, openModel } from './model/open.js';
export { DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT } from './model/prompts.js';
// What an export folder declares, the inputs the models take, the segmenter and the tokenizer.
export type { ModelMeta, SegmenterMeta } from './model/meta.js';
export {
  hostBytes,
  type ImageInput,
  type PixelSpec,
  type RecordBatch,
  recordsToImages,
} from './model/records.js';
export type { DataFingerprint } from './model/run-files.js';
export {
  Segmenter,
  type SegmenterLike,
  type SegmenterLoadOptions,
  type SegmentStep,
} from './model/segmenter.js';
export { loadTokenizer, type TextTokenizer } from './model/tokenizer.js';
// Data parallel over torch.distributed's c10d (docs/distributed.md).
export { type DistEnv, readDistEnv } from './model/dist-env.js';
export { ProcessGroup, type ProcessGroupOptions } from './model/process-group.js';

// Images: limits and preprocessing.
export {
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_PIXELS,
  type EncodedImage,
  type ImageLimits,
} from './images/input.js';
export {
  type ChexmaskRecord,
  type PreprocessResult,
  preprocess,
  type ResolvedPreprocess,
} from './images/preprocess.js';

// The mask segmenter.
export { type OpenSegmenterOptions, openSegmenter } from './segment/open.js';

// The predictor and the HTTP service (docs/service.md).
export {
  ChexmaskIndex,
  type ChexmaskIndexOptions,
  type ChexmaskIndexSummary,
} from './service/chexmask-index.js';
export type { BatchCounts } from './service/batch-queue.js';
export { createServer, HttpError, type ServiceOptions } from './service/http.js';
export {
  DEFAULT_MAX_BATCH,
  type FindingScores,
  type MaskSource,
  MAX_BATCH,
  MaskingPredictor,
  type PredictExtras,
  type Prediction,
  type PredictorKind,
  type PredictorOptions,
  type PreprocessedPair,
  type PreprocessFn,
} from './service/predictor.js';
export { closeOnSignals, type ShutdownOptions } from './service/shutdown.js';

// The paper's experiment (docs/experiments.md): config, backends, metrics, results.
export type { ModelAttribution } from './experiment/attribution-measure.js';
export type { Backend, CacheEntryLike, CacheLike } from './experiment/backend.js';
export { prepareData, prepareTestData, realBackend } from './experiment/backend-real.js';
export {
  ConfigSchema,
  DEMO,
  demoConfig,
  type ExperimentConfig,
  loadConfig,
  parseConfig,
  type TestVariant,
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
export type { Results } from './experiment/results.js';
export { rankBatch, stepsPerEpoch } from './experiment/sampler.js';
export type { SegmenterQuality } from './experiment/segmenter-quality.js';
export type { EpochRecord, TrainProgress } from './experiment/train.js';

// Reports and whole runs.
export { type ReportFiles, writeReports } from './report/write.js';
export type { RunResult } from './experiment/results-assembly.js';
export { type Reevaluation, reevaluate } from './report/reevaluate.js';
export { type RunOptions, runExperiment } from './distributed/run-experiment.js';
