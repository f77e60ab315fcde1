/** The predicted-mask column's provenance (results.json `segmenter`) as one paragraph of the reports. */
import type { SegmenterQuality } from '../experiment/segmenter-quality.js';
import { STRUCTURES, type Structure } from '../segment/metrics.js';
import { mdCode, mdText } from './md-text.js';

/** One paragraph for table2.md and the report, next to the predicted-mask column. */
export function segmenterQualityMarkdown(q: SegmenterQuality): string {
  const f = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '—');
  const names: Record<Structure, string> = { rightLung: 'right lung', leftLung: 'left lung', heart: 'heart' };
  const per = STRUCTURES.map(
    (st) => `${names[st]} ${f(q.dice[st].mean)} (HD95 ${f(q.hd95[st].median, 1)} px)`,
  ).join(', ');
  const fp = q.training?.fingerprint ?? {};
  const trainedOn = q.training
    ? `trained ${q.training.epochs} epoch(s) on cache ${mdText(fp['cache'] ?? '?')}` +
      (fp['maxTrainImages'] !== undefined
        ? ` (at most ${mdText(fp['maxTrainImages'])} training images)`
        : '') +
      (q.training.bestValDice !== null ? `, best validation Dice ${f(q.training.bestValDice)}` : '')
    : 'training data unknown (no train.json beside the weights)';
  return (
    `**Predicted masks** (the masked-pred column): segmenter ${mdCode(q.dir)} with weights ${mdCode(q.weights)} ` +
    `(sha256 ${mdText(q.weightsSha256)}), ${trainedOn}. Against CheXmask on ${q.images} test images ` +
    `(${q.gridSize}×${q.gridSize} grid), mean Dice (median HD95): ${per}.`
  );
}
