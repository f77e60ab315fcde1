/** Public API of the data layer (issue 3): index, CheXmask, masks, preprocessing, cache, synthetic data. */
export { DataError, ReasonCounter } from './errors.js';
export { openCsv, findCsv } from './csv.js';
export { parseRle, decodeRle, encodeRle, runsToMask } from './rle.js';
export {
  parseLandmarks,
  regionPolygon,
  formatLandmarksFlat,
  formatLandmarksNumpy,
  REGIONS,
  REGION_POINTS,
  NUM_LANDMARKS,
  type Region,
  type Landmarks,
} from './landmarks.js';
export {
  buildIndex,
  writeIndex,
  readIndex,
  patientSplit,
  imagePath,
  mulberry32,
  PRESETS as INDEX_PRESETS,
  SPLITS,
  type IndexEntry,
  type IndexOptions,
  type IndexSummary,
  type Split,
} from './mimic.js';
export {
  joinChexmask,
  parseChexmaskRecord,
  CHEXMASK_COLUMNS,
  type ChexmaskRow,
  type JoinOptions,
  type JoinSummary,
} from './chexmask.js';
export {
  contourMap,
  regionMasksOnGrid,
  overlayRgb,
  paintTable,
  checkRowSize,
  REGION_BITS,
  type OverlayOptions,
  type ContourOptions,
  type PaintOptions,
  type RegionMasks,
} from '../masks/overlay.js';
export { fillPolygon, maskBoundary } from '../masks/raster.js';
export { computeGeometry, mapPoints, sampleMask, type Geometry } from '../images/geometry.js';
export {
  preprocess,
  decodePlane,
  decodeFull,
  planeToTensor,
  resolvePreprocess,
  settingsKey,
  CLIP_MEAN,
  CLIP_STD,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type PreprocessOptions,
  type PreprocessResult,
  type ResolvedPreprocess,
} from '../images/preprocess.js';
export { buildCache, openCache, Cache, type Batch, type BuildCacheOptions, type CacheSummary, type CachedEntry } from '../images/cache.js';
export { renderFigure, type FigureOptions } from '../masks/figure.js';
export { synthesize, type SynthOptions, type SynthSummary, type SynthImage } from '../synth/index.js';
