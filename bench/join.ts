/**
 * CheXmask join throughput: our chunked join (landmarks source, every id wanted) against
 * pandas.read_csv(usecols=<the columns that join needs>) on the same ≥1 GB CheXmask-shaped file,
 * timed in the same run on a warm page cache. The file is generated once into bench/out/.
 *
 *   node --import tsx bench/join.ts [--size-gb 1] [--dir bench/out]
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
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CHEXMASK_COLUMNS, joinChexmask } from '../ts/data/chexmask.js';
import { formatLandmarksNumpy } from '../ts/data/landmarks.js';
import { mulberry32 } from '../ts/data/mimic.js';
import { benchDir, root, venvPython } from './common.js';

export interface JoinBench {
  joinMBps: number;
  pandasJoinMBps: number;
  fileBytes: number;
  rows: number;
  joinSeconds: number;
  pandasSeconds: number;
  /** Peak resident memory of this process (the join's). */
  rssMB: number;
  /** Retained heap + buffers per kept row after the join. */
  bytesPerKeptRow: number;
  pandasVersion: string;
  file: string;
}

const HEADER = 'dicom_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width';
/** The columns the landmarks-source join reads (RLE cells are only peeked at, so pandas skips them). */
const JOIN_COLUMNS = ['dicom_id', CHEXMASK_COLUMNS.diceMean, CHEXMASK_COLUMNS.landmarks, 'Height', 'Width'];

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
function rowBodies(n: number): string[] {
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

/** Writes a CheXmask-shaped CSV of at least `bytes` bytes (once; reused while it exists). */
export function makeChexmaskFile(path: string, bytes: number): { rows: number; ids: string[] } {
  const idsPath = `${path}.ids`;
  if (existsSync(path) && existsSync(idsPath) && statSync(path).size >= bytes) {
    const ids = readFileSync(idsPath, 'utf8').split('\n').filter(Boolean);
    return { rows: ids.length, ids };
  }
  mkdirSync(dirname(path), { recursive: true });
  const bodies = rowBodies(16);
  const rnd = mulberry32(11);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  const ids: string[] = [];
  let written = 0;
  let batch: string[] = [`${HEADER}\n`];
  let batchLen = batch[0].length;
  while (written + batchLen < bytes) {
    const id =
      `${(ids.length * 2654435761) >>> 0}`.padStart(10, '0') + `-${ids.length.toString(16).padStart(8, '0')}`;
    ids.push(id);
    const mean = 0.6 + rnd() * 0.32;
    const line = `${id},${mean.toFixed(6)},${Math.min(1, mean + 0.04).toFixed(6)},${bodies[ids.length % bodies.length]}\n`;
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
  return { rows: ids.length, ids };
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

/** Only the project's venv: pandas is installed into it on demand, never into a system Python. */
function python(): string {
  const py = venvPython();
  if (!py) throw new Error('build/env.json is missing: run scripts/setup.sh first (it creates the venv)');
  return py;
}

/** pandas into the project venv on demand, at the version pinned for the benches. */
function ensurePandas(py: string): string {
  const probe = spawnSync(py, ['-c', 'import pandas; print(pandas.__version__)'], { encoding: 'utf8' });
  if (probe.status === 0) return probe.stdout.trim();
  process.stderr.write('[bench join] installing pandas into the venv (tools/requirements-bench.txt)\n');
  const pip = spawnSync(
    py,
    ['-m', 'pip', 'install', '-q', '-r', join(root, 'tools', 'requirements-bench.txt')],
    {
      stdio: 'inherit',
    },
  );
  if (pip.status !== 0) throw new Error('pip install of tools/requirements-bench.txt failed');
  return spawnSync(py, ['-c', 'import pandas; print(pandas.__version__)'], {
    encoding: 'utf8',
  }).stdout.trim();
}

function timePandas(py: string, path: string): { seconds: number; rows: number } {
  const code = [
    'import json, sys, time',
    'import pandas as pd',
    't = time.perf_counter()',
    `df = pd.read_csv(sys.argv[1], usecols=${JSON.stringify(JOIN_COLUMNS)})`,
    'print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(df)}))',
  ].join('\n');
  const r = spawnSync(py, ['-c', code, path], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`pandas run failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

export async function benchJoin(o: { sizeGB?: number; dir?: string } = {}): Promise<JoinBench> {
  const sizeGB = o.sizeGB ?? 1;
  const dir = resolve(o.dir ?? join(benchDir, 'out'));
  const file = join(dir, `chexmask-${sizeGB}GB.csv`);
  const made = makeChexmaskFile(file, Math.round(sizeGB * 1e9));
  const fileBytes = statSync(file).size;
  const py = python();
  const pandasVersion = ensurePandas(py);
  warm(file);

  gc();
  const mem0 = process.memoryUsage();
  const t0 = performance.now();
  const { rows, summary } = await joinChexmask(file, made.ids, { source: 'landmarks', minDice: 0 });
  const joinSeconds = (performance.now() - t0) / 1000;
  gc();
  const mem1 = process.memoryUsage();
  const retained = mem1.heapUsed + mem1.arrayBuffers - (mem0.heapUsed + mem0.arrayBuffers);
  if (summary.kept !== made.rows) throw new Error(`join kept ${summary.kept} of ${made.rows} rows`);
  const rssMB = process.resourceUsage().maxRSS / 1024;

  const pd = timePandas(py, file);
  if (pd.rows !== made.rows) throw new Error(`pandas read ${pd.rows} of ${made.rows} rows`);
  const mb = fileBytes / 1e6;
  const result: JoinBench = {
    joinMBps: mb / joinSeconds,
    pandasJoinMBps: mb / pd.seconds,
    fileBytes,
    rows: made.rows,
    joinSeconds,
    pandasSeconds: pd.seconds,
    rssMB,
    bytesPerKeptRow: retained / rows.size,
    pandasVersion,
    file,
  };
  process.stdout.write(
    `[bench join] ${made.rows} rows, ${mb.toFixed(0)} MB: join ${result.joinMBps.toFixed(0)} MB/s (${joinSeconds.toFixed(2)} s), ` +
      `pandas ${pandasVersion} read_csv(usecols) ${result.pandasJoinMBps.toFixed(0)} MB/s (${pd.seconds.toFixed(2)} s); ` +
      `peak RSS ${rssMB.toFixed(0)} MB, ${result.bytesPerKeptRow.toFixed(0)} B per kept row\n`,
  );
  return result;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const r = await benchJoin({ sizeGB: Number(arg('--size-gb') ?? 1), dir: arg('--dir') });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
