/** Shared fixtures for the native-layer tests: the `tiny` export and its Python reference outputs. */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
export const MODEL_DIR = process.env['CXRMASK_TEST_MODEL'] ?? join(ROOT, 'models', 'tiny');

export function requireModel(): void {
  if (!existsSync(join(MODEL_DIR, 'clip.pt')))
    throw new Error(
      `${MODEL_DIR}/clip.pt missing: run \`bash scripts/setup.sh\` (or python tools/export_biomedclip.py --random-init tiny --out models/tiny --seed 0)`,
    );
}

interface Blob {
  file: string;
  dtype: string;
  shape: number[];
}

export interface Reference {
  images: Blob;
  imageEmbeddings: Blob;
  textEmbeddings: Blob;
  prompts: string[];
  tokenIds: number[][];
  logitScale: number;
}

export function reference(): Reference {
  requireModel();
  return JSON.parse(readFileSync(join(MODEL_DIR, 'reference.json'), 'utf8')) as Reference;
}

export function readF32(blob: Blob): Float32Array {
  const b = readFileSync(join(MODEL_DIR, blob.file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** A learnable toy batch: class-dependent brightness, labels alternate per class. */
export function toyBatch(n: number, size: number, labels = 5): { x: Float32Array; y: Float32Array } {
  const px = 3 * size * size;
  const x = new Float32Array(n * px);
  const y = new Float32Array(n * labels);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    for (let k = 0; k < labels; k++) y[i * labels + k] = k % 2 === 0 ? c : 1 - c;
    for (let j = 0; j < px; j++) x[i * px + j] = (c ? 0.6 : -0.6) + 0.2 * Math.sin(0.37 * j + 1.3 * i);
  }
  return { x, y };
}

export async function expectReject(p: Promise<unknown> | (() => unknown), re: RegExp): Promise<Error> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (!(e instanceof Error)) throw new Error(`rejected with a non-Error: ${String(e)}`);
    if (!re.test(e.message))
      throw new Error(`error message ${JSON.stringify(e.message)} does not match ${re}`);
    return e;
  }
  throw new Error(`expected an error matching ${re}`);
}

/** Every option of a raw addon `Classifier.create` for a 4-wide head-only classifier (what the TS wrapper would pass). */
export const RAW_HEAD_OPTIONS = {
  modelPath: null,
  inputDim: 4,
  numLabels: 5,
  device: 'cpu',
  lrEncoder: 0,
  lrHead: 0.01,
  weightDecay: 0,
  freezeEncoder: false,
  gradClip: 0,
  bf16: false,
  seed: 0,
  imageSize: 0,
};
