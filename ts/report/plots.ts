/** Bar charts as SVG strings, rendered to PNG with sharp. */
import sharp from 'sharp';
import { FINDINGS } from '../common/labels.js';
import { METRIC_LABELS, type Scalar } from '../experiment/evaluate.js';
import type { Results } from '../experiment/results.js';

const COLORS = { original: '#4c72b0', masked: '#dd8452' } as const;
const FINDING_COLORS = ['#4c72b0', '#dd8452', '#55a868', '#c44e52', '#8172b2'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface BarSeries {
  name: string;
  color: string;
  values: number[]; // one per category (NaN = missing)
  errors?: number[];
}

export interface GroupedBars {
  title: string;
  /** A smaller line under the title: what the bars and error bars are. */
  subtitle?: string;
  yLabel: string;
  categories: string[];
  series: BarSeries[];
  yMin: number;
  yMax: number;
  width?: number;
  height?: number;
  refLine?: number;
  /** The reference line's name, written at its right end. */
  refLabel?: string;
}

/** The chart's geometry: size, margins, plot area, and the value → y mapping (clamped to the range). */
interface ChartFrame {
  W: number;
  H: number;
  m: { l: number; r: number; t: number; b: number };
  pw: number;
  ph: number;
  y: (v: number) => number;
}

function chartFrame(o: GroupedBars): ChartFrame {
  const W = o.width ?? 900;
  const H = o.height ?? 480;
  const m = { l: 70, r: 20, t: 50, b: 110 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const y = (v: number) =>
    m.t + ph - ((Math.min(Math.max(v, o.yMin), o.yMax) - o.yMin) / (o.yMax - o.yMin)) * ph;
  return { W, H, m, pw, ph, y };
}

/** Horizontal grid lines with their values, and the dashed reference line when it is in range. */
function gridLines(f: ChartFrame, o: GroupedBars): string[] {
  const { W, m, y } = f;
  const parts: string[] = [];
  // an even count on a range symmetric about 0 puts a tick on 0 (the Δ plot)
  const ticks = o.yMin === -o.yMax ? 4 : 5;
  for (let i = 0; i <= ticks; i++) {
    const v = o.yMin + ((o.yMax - o.yMin) * i) / ticks;
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${m.l - 8}" y="${y(v) + 4}" font-size="12" text-anchor="end">${v.toFixed(2)}</text>`,
    );
  }
  if (o.refLine !== undefined && o.refLine >= o.yMin && o.refLine <= o.yMax) {
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${y(o.refLine)}" y2="${y(o.refLine)}" stroke="#333" stroke-dasharray="4 3"/>`,
    );
    if (o.refLabel)
      parts.push(
        `<text x="${W - m.r - 4}" y="${y(o.refLine) - 4}" font-size="11" text-anchor="end" fill="#333">${esc(o.refLabel)}</text>`,
      );
  }
  return parts;
}

/** One bar (from the zero line, with its ± error bar), or "n/a" for a missing value. */
function bar(
  f: ChartFrame,
  x: number,
  bw: number,
  zero: number,
  v: number,
  e: number | undefined,
  color: string,
): string[] {
  const { y } = f;
  if (!Number.isFinite(v))
    return [`<text x="${x + bw / 2}" y="${zero - 4}" font-size="10" text-anchor="middle">n/a</text>`];
  const top = Math.min(y(v), zero);
  const h = Math.abs(zero - y(v));
  const parts = [
    `<rect x="${x + 1}" y="${top}" width="${bw - 2}" height="${Math.max(h, 0.5)}" fill="${color}"/>`,
  ];
  if (e !== undefined && Number.isFinite(e) && e > 0) {
    const cx = x + bw / 2;
    parts.push(`<line x1="${cx}" x2="${cx}" y1="${y(v - e)}" y2="${y(v + e)}" stroke="black"/>`);
    parts.push(`<line x1="${cx - 4}" x2="${cx + 4}" y1="${y(v + e)}" y2="${y(v + e)}" stroke="black"/>`);
    parts.push(`<line x1="${cx - 4}" x2="${cx + 4}" y1="${y(v - e)}" y2="${y(v - e)}" stroke="black"/>`);
  }
  return parts;
}

/** Grouped vertical bars with optional error bars; y range [yMin, yMax]. */
export function groupedBarSvg(o: GroupedBars): string {
  const f = chartFrame(o);
  const { W, H, m, pw, ph, y } = f;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="26" font-size="18" text-anchor="middle">${esc(o.title)}</text>`,
    ...(o.subtitle
      ? [
          `<text x="${W / 2}" y="43" font-size="12" text-anchor="middle" fill="#444">${esc(o.subtitle)}</text>`,
        ]
      : []),
    ...gridLines(f, o),
  ];
  const gw = pw / Math.max(1, o.categories.length);
  const bw = (gw * 0.8) / Math.max(1, o.series.length);
  const zero = y(Math.max(o.yMin, Math.min(0, o.yMax)));
  o.categories.forEach((c, ci) => {
    const gx = m.l + ci * gw + gw * 0.1;
    o.series.forEach((s, si) => {
      parts.push(...bar(f, gx + si * bw, bw, zero, s.values[ci]!, s.errors?.[ci], s.color));
    });
    c.split('\n').forEach((ln, li) => {
      parts.push(
        `<text x="${m.l + ci * gw + gw / 2}" y="${H - m.b + 20 + li * 15}" font-size="12" text-anchor="middle">${esc(ln)}</text>`,
      );
    });
  });
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${zero}" y2="${zero}" stroke="black"/>`);
  parts.push(
    `<text x="18" y="${m.t + ph / 2}" font-size="13" text-anchor="middle" transform="rotate(-90 18 ${m.t + ph / 2})">${esc(o.yLabel)}</text>`,
  );
  // the legend: one swatch and name per series, along the bottom
  o.series.forEach((s, si) => {
    const lx = m.l + si * 170;
    const ly = H - 22;
    parts.push(`<rect x="${lx}" y="${ly - 11}" width="14" height="14" fill="${s.color}"/>`);
    parts.push(`<text x="${lx + 20}" y="${ly + 1}" font-size="13">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}

function shortLabel(label: string): string {
  return label
    .replace('Joint fine-tuning', 'JFT')
    .replace('Linear probing', 'LP')
    .replace(', trained on ', '\ntrain: ')
    .replace('Zero-shot (', 'Zero-shot\n(')
    .replace(/\)$/, ')');
}

/** What a bar and its error bar are, for the plots' subtitles and the report's line above them. */
export function errorBarsText(r: Results): string {
  const n = r.seeds.length;
  return `Test split. Bars: mean over ${n} seed${n === 1 ? '' : 's'}; error bars: ± sample sd (n − 1) over seeds; zero-shot: one deterministic run, no error bar.`;
}

/** Plot 1: the primary metric per setup, original vs masked test images (± sd over seeds). */
export function metricBarsSvg(r: Results, metric: Scalar): string {
  const groups = r.evaluation.groups.filter(
    (g) => metric === 'top1Accuracy' || g.key !== 'zeroshot/softmax-5way',
  );
  const series = (['original', 'masked'] as const).map((v) => {
    const rows = groups.map(
      (g) => r.evaluation.summary.find((s) => s.group === g.key && s.testVariant === v)!,
    );
    return {
      name: `test: ${v}`,
      color: COLORS[v],
      values: rows.map((s) => s?.metrics[metric].mean ?? Number.NaN),
      errors: rows.map((s) => s?.metrics[metric].sd ?? Number.NaN),
    };
  });
  return groupedBarSvg({
    title: `${METRIC_LABELS[metric]} — original vs masked test images`,
    subtitle: errorBarsText(r),
    yLabel: METRIC_LABELS[metric],
    categories: groups.map((g) => shortLabel(g.label)),
    series,
    yMin: 0,
    yMax: 1,
    ...referenceLine(r, metric),
  });
}

/** The line a bar is read against: chance for AUROC, predicting every finding absent for accuracy. */
function referenceLine(r: Results, metric: Scalar): Pick<GroupedBars, 'refLine' | 'refLabel'> {
  if (metric === 'macroAUROC') return { refLine: 0.5, refLabel: 'chance 0.5' };
  const allNegative = r.data.allNegativeMeanLabelAccuracy;
  if (metric === 'meanLabelAccuracy' && Number.isFinite(allNegative))
    return { refLine: allNegative, refLabel: `every finding absent ${allNegative.toFixed(3)}` };
  return {};
}

/** Plot 2: per-finding AUROC delta (masked − original) for each setup. */
export function perDiseaseDeltaSvg(r: Results): string {
  const groups = r.evaluation.groups.filter((g) => g.key !== 'zeroshot/softmax-5way');
  const deltas = groups.map((g) => {
    const o = r.evaluation.summary.find((s) => s.group === g.key && s.testVariant === 'original');
    const m = r.evaluation.summary.find((s) => s.group === g.key && s.testVariant === 'masked');
    return FINDINGS.map(
      (_, k) => (m?.perLabel[k]?.auroc.mean ?? Number.NaN) - (o?.perLabel[k]?.auroc.mean ?? Number.NaN),
    );
  });
  const finite = deltas.flat().filter(Number.isFinite);
  const lim = Math.max(0.05, ...finite.map((d) => Math.abs(d)));
  const span = Math.ceil(lim * 20) / 20;
  return groupedBarSvg({
    title: 'Per-finding AUROC change when test images are masked (masked − original)',
    subtitle: `Test split. Each bar: the mean over seeds of a finding's masked AUROC minus the mean of its original AUROC; no error bars.`,
    yLabel: 'Δ AUROC',
    categories: groups.map((g) => shortLabel(g.label)),
    series: FINDINGS.map((f, k) => ({
      name: f,
      color: FINDING_COLORS[k]!,
      values: deltas.map((d) => d[k]!),
    })),
    yMin: -span,
    yMax: span,
    width: 1000,
  });
}
