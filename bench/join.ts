/**
 * CheXmask join throughput when every row is wanted: our chunked join (landmarks source, every id
 * wanted, Dice threshold applied) against pandas.read_csv(usecols=<the cells the join decodes>) on the
 * same CheXmask-shaped file, timed in the same run on a warm page cache, reported as a ratio. Two
 * shapes: `preprocessed` (the MIMIC-CXR-JPG file's rows: 1024² grid, flat landmark lists, ≈ 18.5 KB per
 * row, so per-row work dominates) and `original` (full-size rows, ≈ 55 KB). Rows look real: long RLE
 * cells rasterized from the landmark polygons, full-precision Dice cells, rows below the threshold,
 * blank cells and duplicate ids. Files are generated once into bench/out/.
 *
 *   node --import tsx bench/join.ts [--size-gb 1 | --quick] [--repeat 3] [--shape preprocessed,original] [--dir bench/out]
 */

import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { mulberry32 } from '../ts/common/random.js';
import { CHEXMASK_COLUMNS, type JoinSummary, joinChexmask } from '../ts/data/chexmask.js';
import { formatLandmarksFlat, formatLandmarksNumpy } from '../ts/data/landmarks.js';

import { benchDir, benchPython } from './common.js';

export interface JoinBench {
  /** preprocessed: 1024² rows, flat landmarks (≈ 18.5 KB per row); original: full-size rows (≈ 55 KB). */
  shape: JoinFileShape;
  minDice: number;
  /** Our join, every id wanted (MB of file per second). */
  joinMBps: number;
  /** pandas.read_csv(usecols=the cells the join decodes) on the same file. */
  pandasJoinMBps: number;
  /** joinMBps ÷ pandasJoinMBps (wall time, best of `repeat`). */
  ratio: number;
  /** The same ratio in CPU seconds (every thread of each process). */
  cpuRatio: number;
  /** The scan alone: the same file with no id wanted (every row skipped after its id). */
  scanMBps: number;
  fileBytes: number;
  rows: number;
  kept: number;
  refused: Record<string, number>;
  joinSeconds: number;
  pandasSeconds: number;
  joinCpuSeconds: number;
  pandasCpuSeconds: number;
  repeat: number;
  /** Peak resident memory of this process (the join's). */
  rssMB: number;
  /** Retained heap + buffers per kept row after the join. */
  bytesPerKeptRow: number;
  pandasVersion: string;
  file: string;
}

const HEADER = 'dicom_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width';
/** The cells the landmarks-source join decodes (RLE cells are only peeked at, so pandas skips them). */
const JOIN_COLUMNS = [
  'dicom_id',
  CHEXMASK_COLUMNS.diceMean,
  CHEXMASK_COLUMNS.diceMax,
  CHEXMASK_COLUMNS.landmarks,
  CHEXMASK_COLUMNS.height,
  CHEXMASK_COLUMNS.width,
];

/** RLE of a filled ellipse on an H×W grid, one run per image row (how CheXmask lungs and hearts look). */
function ellipseRle(h: number, w: number, cx: number, cy: number, rx: number, ry: number): string {
  const parts: string[] = [];
  for (let y = Math.max(0, Math.ceil(cy - ry)); y <= Math.min(h - 1, Math.floor(cy + ry)); y++) {
    const dx = rx * Math.sqrt(Math.max(0, 1 - ((y - cy) / ry) ** 2));
    const x0 = Math.max(0, Math.round(cx - dx));
    const x1 = Math.min(w - 1, Math.round(cx + dx));
    if (x1 >= x0) parts.push(`${y * w + x0 + 1} ${x1 - x0 + 1}`);
  }
  return parts.join(' ');
}

/** A few distinct full-resolution row bodies (cells after the id and Dice columns). */
function originalBodies(n: number): string[] {
  const rnd = mulberry32(7);
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    const h = 2400 + Math.round(rnd() * 800);
    const w = 2000 + Math.round(rnd() * 1000);
    const lm: number[] = [];
    for (let i = 0; i < 120; i++) {
      const a = (2 * Math.PI * i) / 120;
      lm.push(Math.round(w / 2 + (w / 3) * Math.cos(a)), Math.round(h / 2 + (h / 3) * Math.sin(a)));
    }
    const right = ellipseRle(h, w, w * 0.3, h * 0.45, w * 0.16, h * 0.33);
    const left = ellipseRle(h, w, w * 0.7, h * 0.45, w * 0.16, h * 0.33);
    const heart = ellipseRle(h, w, w * 0.55, h * 0.6, w * 0.14, h * 0.16);
    out.push(`"${formatLandmarksNumpy(lm)}",${left},${right},${heart},${h},${w}`);
  }
  return out;
}

/** RLE of a filled polygon (flat [x, y, …]) on an H×W grid: each scanline's span between its edges. */
function polygonRle(pts: number[], h: number, w: number): string {
  const parts: string[] = [];
  const n = pts.length / 2;
  for (let y = 0; y < h; y++) {
    const xs: number[] = [];
    for (let i = 0; i < n; i++) {
      const [x0, y0, x1, y1] = [
        pts[2 * i],
        pts[2 * i + 1],
        pts[2 * ((i + 1) % n)],
        pts[2 * ((i + 1) % n) + 1],
      ];
      if (y0 <= y !== y1 <= y) xs.push(x0 + ((y - y0) * (x1 - x0)) / (y1 - y0));
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const a = Math.max(0, Math.round(xs[k]));
      const b = Math.min(w - 1, Math.round(xs[k + 1]));
      if (b >= a) parts.push(`${y * w + a + 1} ${b - a + 1}`);
    }
  }
  return parts.join(' ');
}

/**
 * Preprocessed-shaped row bodies, as in CheXmask's MIMIC-CXR-JPG file: 1024×1024 grid, a quoted flat
 * landmark list of 240 integers (RL 44, LL 50, H 26 points) and the three RLE cells rasterized from
 * those polygons (≈ 7 KB per lung, ≈ 3 KB for the heart; ≈ 18.5 KB per row as in the 49-row sample).
 * Some rows have a blank Heart cell (an empty mask).
 */
function preprocessedBodies(n: number): string[] {
  const rnd = mulberry32(7);
  const out: string[] = [];
  const organ = (count: number, cx: number, cy: number, rx: number, ry: number): number[] => {
    const p: number[] = [];
    for (let i = 0; i < count; i++) {
      const a = (2 * Math.PI * i) / count;
      const j = 1 + (rnd() - 0.5) * 0.04;
      p.push(Math.round(cx + rx * j * Math.cos(a)), Math.round(cy + ry * j * Math.sin(a)));
    }
    return p;
  };
  for (let k = 0; k < n; k++) {
    const s = 0.9 + rnd() * 0.2;
    const rl = organ(44, 300 * s, 450, 165 * s, 330 * s);
    const ll = organ(50, 710 * s, 450, 160 * s, 335 * s);
    const ht = organ(26, 560 * s, 640, 150 * s, 150 * s);
    const lm = [...rl, ...ll, ...ht];
    const heart = k % 50 === 7 ? '' : polygonRle(ht, 1024, 1024);
    out.push(
      `"${formatLandmarksFlat(lm)}",${polygonRle(ll, 1024, 1024)},${polygonRle(rl, 1024, 1024)},${heart},1024,1024`,
    );
  }
  return out;
}

export type JoinFileShape = 'preprocessed' | 'original';

/** A MIMIC-style dicom_id: five dash-joined 8-hex groups (44 characters). */
function dicomId(k: number): string {
  const g = (m: number) => ((Math.imul(k + 1, m) >>> 0) ^ 0x5bd1e995).toString(16).padStart(8, '0').slice(-8);
  return [g(2654435761), g(2246822519), g(3266489917), g(668265263), g(374761393)].join('-');
}

/** A Dice as pandas writes a float64 (shortest round-trip repr, ≈ 18 characters). */
const diceText = (v: number) => String(v);

/**
 * Writes a CheXmask-shaped CSV of at least `bytes` bytes (once; reused while it exists). Real-shaped:
 * full-precision Dice cells, ≈ 3 % of rows below the 0.7 threshold, ≈ 0.5 % with a blank Dice Max, and
 * ≈ 1 % duplicate rows (an earlier id again, with another Dice). `ids` lists every id once.
 */
export function makeChexmaskFile(
  path: string,
  bytes: number,
  shape: JoinFileShape = 'original',
): { rows: number; ids: string[] } {
  const idsPath = `${path}.ids`;
  if (existsSync(path) && existsSync(idsPath) && statSync(path).size >= bytes) {
    const ids = readFileSync(idsPath, 'utf8').split('\n').filter(Boolean);
    const rows = Number(readFileSync(`${path}.rows`, 'utf8'));
    return { rows, ids };
  }
  mkdirSync(dirname(path), { recursive: true });
  const bodies = shape === 'original' ? originalBodies(16) : preprocessedBodies(64);
  const rnd = mulberry32(11);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  const ids: string[] = [];
  let rows = 0;
  let written = 0;
  let batch: string[] = [`${HEADER}\n`];
  let batchLen = batch[0].length;
  while (written + batchLen < bytes) {
    const dup = shape === 'preprocessed' && ids.length > 100 && rnd() < 0.01;
    const id = dup ? ids[Math.floor(rnd() * ids.length)] : dicomId(ids.length);
    if (!dup) ids.push(id);
    const mean =
      shape === 'original' ? 0.6 + rnd() * 0.32 : rnd() < 0.03 ? 0.5 + rnd() * 0.2 : 0.7 + rnd() * 0.25;
    const max = shape === 'preprocessed' && rnd() < 0.005 ? '' : diceText(Math.min(1, mean + rnd() * 0.05));
    const mt = shape === 'original' ? mean.toFixed(6) : diceText(mean);
    const line = `${id},${mt},${shape === 'original' ? Math.min(1, mean + 0.04).toFixed(6) : max},${bodies[rows % bodies.length]}\n`;
    rows++;
    batch.push(line);
    batchLen += line.length;
    if (batchLen > 16 << 20) {
      written += writeSync(fd, batch.join(''));
      batch = [];
      batchLen = 0;
    }
  }
  written += writeSync(fd, batch.join(''));
  closeSync(fd);
  renameSync(tmp, path);
  writeFileSyncText(idsPath, `${ids.join('\n')}\n`);
  writeFileSyncText(`${path}.rows`, String(rows));
  return { rows, ids };
}

function writeFileSyncText(p: string, s: string): void {
  const fd = openSync(p, 'w');
  writeSync(fd, s);
  closeSync(fd);
}

/** Reads the file once so both readers start from the same (warm) page cache. */
function warm(path: string): void {
  const fd = openSync(path, 'r');
  const b = Buffer.allocUnsafe(16 << 20);
  while (readSync(fd, b, 0, b.length, null) > 0);
  closeSync(fd);
}

/**
 * pandas' read of the same cells, timed, and (untimed) the rows the join should keep by its rule: the
 * ids with at least one row whose Dice RCA (Mean) passes minDice.
 */
function timePandas(
  py: string,
  path: string,
  minDice: number,
): { seconds: number; cpuSeconds: number; rows: number; kept: number } {
  const code = [
    'import json, sys, time',
    'import pandas as pd',
    't, c = time.perf_counter(), time.process_time()',
    `df = pd.read_csv(sys.argv[1], usecols=${JSON.stringify(JOIN_COLUMNS)})`,
    's, cs = time.perf_counter() - t, time.process_time() - c',
    `kept = df.loc[df[${JSON.stringify(CHEXMASK_COLUMNS.diceMean)}] >= float(sys.argv[2]), "dicom_id"].nunique()`,
    'print(json.dumps({"seconds": s, "cpuSeconds": cs, "rows": len(df), "kept": int(kept)}))',
  ].join('\n');
  const r = spawnSync(py, ['-c', code, path, String(minDice)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`pandas run failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * One shape: generate (once) a ≥ sizeGB file, then on a warm page cache time `repeat` interleaved
 * rounds of our join (every id wanted) and pandas, best of each, plus the scan alone (no id wanted).
 * Wall time is the headline; CPU time (all threads of each process) is reported too, because on a
 * shared machine it moves less than wall time.
 */
export async function benchJoin(
  o: { sizeGB?: number; dir?: string; shape?: JoinFileShape; minDice?: number; repeat?: number } = {},
): Promise<JoinBench> {
  const sizeGB = o.sizeGB ?? 1;
  const shape = o.shape ?? 'preprocessed';
  const minDice = o.minDice ?? (shape === 'original' ? 0 : 0.7);
  const repeat = Math.max(1, o.repeat ?? 3);
  const dir = resolve(o.dir ?? join(benchDir, 'out'));
  const file = join(dir, `chexmask-${shape}-${sizeGB}GB.csv`);
  const made = makeChexmaskFile(file, Math.round(sizeGB * 1e9), shape);
  const fileBytes = statSync(file).size;
  const { python: py, version: pandasVersion } = benchPython('pandas');
  warm(file);

  let joinSeconds = Number.POSITIVE_INFINITY;
  let joinCpuSeconds = Number.POSITIVE_INFINITY;
  let pandasSeconds = Number.POSITIVE_INFINITY;
  let pandasCpuSeconds = Number.POSITIVE_INFINITY;
  let rssMB = 0;
  let bytesPerKeptRow = 0;
  let summary: JoinSummary | undefined;
  // Memory in an untimed round first, on a clean heap (freed buffers of earlier joins would hide it).
  {
    gc();
    const mem0 = process.memoryUsage();
    const joined = await joinChexmask(file, made.ids, { source: 'landmarks', minDice });
    gc();
    const mem1 = process.memoryUsage();
    const retained = mem1.heapUsed + mem1.arrayBuffers - (mem0.heapUsed + mem0.arrayBuffers);
    rssMB = process.resourceUsage().maxRSS / 1024;
    bytesPerKeptRow = retained / joined.rows.size;
    joined.rows.clear();
  }
  for (let round = 0; round < repeat; round++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const joined = await joinChexmask(file, made.ids, { source: 'landmarks', minDice });
    const cpu = process.cpuUsage(c0);
    joinSeconds = Math.min(joinSeconds, (performance.now() - t0) / 1000);
    joinCpuSeconds = Math.min(joinCpuSeconds, (cpu.user + cpu.system) / 1e6);
    summary = joined.summary;
    joined.rows.clear();
    const pd = timePandas(py, file, minDice);
    if (pd.rows !== made.rows) throw new Error(`pandas read ${pd.rows} of ${made.rows} rows`);
    if (summary.rowsRead !== made.rows || summary.kept !== pd.kept) {
      throw new Error(
        `join read ${summary.rowsRead} rows and kept ${summary.kept}; pandas: ${pd.rows}, ${pd.kept}`,
      );
    }
    pandasSeconds = Math.min(pandasSeconds, pd.seconds);
    pandasCpuSeconds = Math.min(pandasCpuSeconds, pd.cpuSeconds);
  }
  if (!summary) throw new Error('no round ran');

  const t1 = performance.now();
  const scan = await joinChexmask(file, [], { source: 'landmarks', minDice });
  const scanSeconds = (performance.now() - t1) / 1000;
  if (scan.summary.rowsRead !== made.rows)
    throw new Error(`scan read ${scan.summary.rowsRead} of ${made.rows}`);

  const mb = fileBytes / 1e6;
  const result: JoinBench = {
    shape,
    minDice,
    joinMBps: mb / joinSeconds,
    pandasJoinMBps: mb / pandasSeconds,
    ratio: pandasSeconds / joinSeconds,
    cpuRatio: pandasCpuSeconds / joinCpuSeconds,
    scanMBps: mb / scanSeconds,
    fileBytes,
    rows: made.rows,
    kept: summary.kept,
    refused: summary.refused.counts,
    joinSeconds,
    pandasSeconds,
    joinCpuSeconds,
    pandasCpuSeconds,
    repeat,
    rssMB,
    bytesPerKeptRow,
    pandasVersion,
    file,
  };
  process.stdout.write(
    `[bench join] ${shape}: ${made.rows} rows (${summary.kept} kept), ${mb.toFixed(0)} MB, best of ${repeat}: ` +
      `join ${result.joinMBps.toFixed(0)} MB/s (${joinSeconds.toFixed(2)} s, CPU ${joinCpuSeconds.toFixed(2)} s), ` +
      `pandas ${pandasVersion} read_csv(usecols) ${result.pandasJoinMBps.toFixed(0)} MB/s (${pandasSeconds.toFixed(2)} s, CPU ${pandasCpuSeconds.toFixed(2)} s), ` +
      `ratio ${result.ratio.toFixed(2)}x wall, ${result.cpuRatio.toFixed(2)}x CPU; scan alone ${result.scanMBps.toFixed(0)} MB/s; ` +
      `peak RSS ${rssMB.toFixed(0)} MB, ${bytesPerKeptRow.toFixed(0)} B per kept row\n`,
  );
  return result;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      'size-gb': { type: 'string', default: '1' },
      quick: { type: 'boolean', default: false },
      repeat: { type: 'string', default: '3' },
      shape: { type: 'string', default: 'preprocessed,original' },
      dir: { type: 'string' },
    },
  });
  const sizeGB = values.quick ? 0.1 : Number(values['size-gb']);
  if (!(sizeGB > 0)) throw new RangeError(`--size-gb must be a positive number, got ${values['size-gb']}`);
  const out: JoinBench[] = [];
  for (const shape of String(values.shape).split(',')) {
    if (shape !== 'preprocessed' && shape !== 'original') {
      throw new RangeError(`--shape: preprocessed and/or original, got ${shape}`);
    }
    out.push(await benchJoin({ sizeGB, dir: values.dir, shape, repeat: Number(values.repeat) }));
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
