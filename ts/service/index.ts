export {
  chexmaskRowFor,
  type FindingScores,
  inferKind,
  MaskingPredictor,
  type Prediction,
  type PredictorKind,
  type PredictorOptions,
} from './predictor.js';
