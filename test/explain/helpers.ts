/** Shared fixtures for the attribution tests: smooth deterministic images and the Python reference. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pythonExe } from '../../bench/common.js';
import { MODEL_DIR, ROOT } from '../native/helpers.js';

/** n normalised images [n,3,S,S] with image-dependent structure (values in about [-2, 2]). */
export function images(n: number, size: number, seed = 0): Float32Array {
  const x = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < size; y++)
        for (let v = 0; v < size; v++)
          x[((i * 3 + c) * size + y) * size + v] =
            1.5 * Math.sin(0.05 * (y + 7 * i + seed) + 0.3 * c) * Math.cos(0.07 * v - 0.2 * i) +
            0.3 * Math.sin(0.9 * y * v + i + c);
  return x;
}

/** The setup venv's Python (one definition: bench/common.ts). */
export const python = (): string => pythonExe();

function f32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export interface PyAttribution {
  map: Float32Array;
  signed: Float32Array;
  score: Float32Array;
  baselineScore: Float32Array | null;
}

/** One reference job: the method's settings and what is scored ({kind:'clip',rows} or {kind:'classifier',ckpt,label}). */
export type PyJob = Record<string, unknown> & { score: Record<string, unknown> };

/**
 * The same attributions computed by test/explain/fixtures/attribution_ref.py in PyTorch (one Python
 * process for all jobs: importing torch dominates). `blobs.text` / `blobs.baseline` go to every job.
 */
export function pythonAttributions(
  x: Float32Array,
  n: number,
  size: number,
  jobs: PyJob[],
  blobs: Record<string, Float32Array> = {},
): PyAttribution[] {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-attr-'));
  try {
    writeFileSync(join(dir, 'images.f32'), x);
    const paths: Record<string, string> = {};
    for (const [k, v] of Object.entries(blobs)) {
      paths[k] = join(dir, `${k}.f32`);
      writeFileSync(paths[k]!, v);
    }
    const full = jobs.map((job, k) => {
      mkdirSync(join(dir, String(k)));
      const score = { ...job.score, ...(paths['text'] ? { text: paths['text'] } : {}) };
      return { images: join(dir, 'images.f32'), n, size, baseline: paths['baseline'] ?? null, ...job, score };
    });
    writeFileSync(join(dir, 'jobs.json'), JSON.stringify(full));
    const script = join(ROOT, 'test', 'explain', 'fixtures', 'attribution_ref.py');
    const py = spawnSync(python(), [script, join(MODEL_DIR, 'clip.pt'), join(dir, 'jobs.json'), dir], {
      encoding: 'utf8',
    });
    if (py.status !== 0) throw new Error(`attribution_ref.py failed: ${py.stderr}`);
    return jobs.map((_, k) => {
      const base = join(dir, String(k), 'baseline.f32');
      return {
        map: f32(join(dir, String(k), 'map.f32')),
        signed: f32(join(dir, String(k), 'signed.f32')),
        score: f32(join(dir, String(k), 'score.f32')),
        baselineScore: existsSync(base) ? f32(base) : null,
      };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** max |a − b| / max |b|: float32 gradients through a ViT agree to ~1e-6 relative on one machine. */
export function relDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / Math.max(m, 1e-12);
}
