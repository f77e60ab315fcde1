/** The report layer: tables, plots, report.md / report.html of a run. */
export { reportHtml } from './html.js';
export { reportMarkdown } from './markdown.js';
export { groupedBarSvg, svgToPng } from './plots.js';
export { metricTable, perDiseaseMarkdown, table2Markdown } from './tables.js';
export { type ReportFiles, writeReports } from './write.js';
