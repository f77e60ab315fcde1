/** Public API of the data layer (issue 3): index, CheXmask, masks, preprocessing, cache, synthetic data. */

export {
  type Batch,
  type BuildCacheOptions,
  buildCache,
  Cache,
  type CachedEntry,
  type CacheSummary,
  openCache,
} from '../images/cache.js';
export {
  DATASET_FORMATS,
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_PIXELS,
  IMAGE_SIGNATURES,
  type ImageFormat,
  type ImageLimits,
  INPUT_FORMATS,
  readImageFile,
  sniffFormat,
} from '../images/input.js';
export {
  type ChexmaskRecord,
  CLIP_MEAN,
  CLIP_STD,
  decodeFull,
  decodePlane,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type PreprocessOptions,
  type PreprocessResult,
  planeToTensor,
  preprocess,
  type ResolvedPreprocess,
  resolvePreprocess,
  settingsKey,
} from '../images/preprocess.js';
export { computeGeometry, type Geometry, mapPoints, sampleMask } from '../masks/geometry.js';
export {
  type ContourOptions,
  checkMaskSource,
  checkRowSize,
  contourMap,
  type OverlayOptions,
  overlayRgb,
  type PaintOptions,
  paintTable,
  REGION_BITS,
  type RegionMasks,
  regionMasksOnGrid,
} from '../masks/overlay.js';
export { fillPolygon, maskBoundary } from '../masks/raster.js';
export { type FigureOptions, renderFigure } from '../report/figure.js';
export { type SynthImage, type SynthOptions, type SynthSummary, synthesize } from '../synth/index.js';
export {
  CHEXMASK_COLUMNS,
  type ChexmaskRow,
  type JoinOptions,
  type JoinSummary,
  joinChexmask,
  parseChexmaskRecord,
} from './chexmask.js';
export { findCsv, openCsv } from './csv.js';
export { DataError, ReasonCounter } from './errors.js';
export {
  formatLandmarksFlat,
  formatLandmarksNumpy,
  type Landmarks,
  NUM_LANDMARKS,
  parseLandmarks,
  REGION_POINTS,
  REGIONS,
  type Region,
  regionPolygon,
} from './landmarks.js';
export {
  buildIndex,
  type IndexEntry,
  type IndexOptions,
  type IndexSummary,
  imagePath,
  mulberry32,
  PRESETS as INDEX_PRESETS,
  patientSplit,
  readIndex,
  SPLITS,
  type Split,
  writeIndex,
} from './mimic.js';
export { decodeRle, encodeRle, parseRle, runsToMask } from './rle.js';
