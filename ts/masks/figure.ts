/** Moved to ts/report/figure.ts (figures live with the reports); re-exported for existing imports. */
export { type FigureOptions, renderFigure } from '../report/figure.js';
