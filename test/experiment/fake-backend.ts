/**
 * A pure-JS stand-in for the native + data layers (same interfaces as ts/experiment/backend.ts), so
 * the grid, resume and reports can be tested in seconds without LibTorch. Images are 3×8×8 tensors
 * whose pixel blocks carry the labels; the "CLIP" is a fixed random projection; the classifier is a
 * logistic regression trained with Adam whose state (weights + moments + step) is saved/loaded.
 */

import { readFileSync } from 'node:fs';
import type { LinkPolicy } from '../../ts/common/files.js';
import { writeFileAtomic } from '../../ts/common/io.js';
import { mulberry32 } from '../../ts/common/random.js';
import type { Split } from '../../ts/data/mimic.js';
import type { Backend, CacheLike } from '../../ts/experiment/backend.js';
import type { Batch as FloatBatch } from '../../ts/images/cache.js';
import type { ClassifierLike, ClipLike, ModelBackend } from '../../ts/model/backend.js';
import type { ClassifierOptions } from '../../ts/model/classifier.js';

const K = 5;
const S = 8;
const PIX = 3 * S * S;

export interface FakeOptions {
  n?: number;
  seed?: number;
  /** row indices whose image cannot be read */
  bad?: number[];
}

export function fakeCache({ n = 120, seed = 1, bad = [] }: FakeOptions = {}): CacheLike {
  const r = mulberry32(seed);
  const entries = Array.from({ length: n }, (_, i) => {
    const split: Split = i % 5 === 0 ? 'test' : i % 5 === 1 ? 'validate' : 'train';
    const labels = Array.from({ length: K }, () => (r() < 0.35 ? 1 : 0));
    const labelMask = labels.map(() => (r() < 0.05 ? 0 : 1));
    return { dicomId: `d${i}`, split, labels, labelMask };
  });
  const noise = Float32Array.from({ length: n * PIX }, () => r() - 0.5);
  return {
    entries,
    indicesOf: (s) => entries.flatMap((e, i) => (e.split === s ? [i] : [])),
    batch(indices, variant): FloatBatch {
      const x = new Float32Array(indices.length * PIX);
      const labels = new Float32Array(indices.length * K);
      const labelMask = new Float32Array(indices.length * K);
      indices.forEach((row, j) => {
        if (bad.includes(row)) throw new Error(`cannot read image ${row}`);
        const e = entries[row]!;
        for (let p = 0; p < PIX; p++) {
          const k = Math.floor(p / (PIX / K + 1));
          x[j * PIX + p] =
            noise[row * PIX + p]! +
            0.8 * (e.labels[k] ?? 0) +
            (variant === 'masked' && p % 7 === 0 ? 0.3 : 0);
        }
        labels.set(e.labels, j * K);
        labelMask.set(e.labelMask, j * K);
      });
      return { x, n: indices.length, labels, labelMask };
    },
  };
}

class FakeClip implements ClipLike {
  embedDim = 16;
  logitScale = 10;
  private w: Float32Array;
  constructor() {
    const r = mulberry32(42);
    this.w = Float32Array.from({ length: this.embedDim * PIX }, () => r() - 0.5);
  }
  async encodeImage(x: Float32Array, n: number) {
    const d = this.embedDim;
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let p = 0; p < PIX; p++) s += this.w[j * PIX + p]! * x[i * PIX + p]!;
        out[i * d + j] = s;
      }
    return out;
  }
  async encodeText(ids: BigInt64Array, n: number) {
    const L = ids.length / n;
    const out = new Float32Array(n * this.embedDim);
    for (let i = 0; i < n; i++) {
      let h = 0;
      for (let t = 0; t < L; t++) h = (h * 31 + Number(ids[i * L + t]!)) >>> 0;
      const r = mulberry32(h);
      for (let j = 0; j < this.embedDim; j++) out[i * this.embedDim + j] = r() - 0.5;
    }
    return out;
  }
  dispose() {}
}

class FakeClassifier implements ClassifierLike {
  /** Recorded in the saved file, as the addon records it (Classifier.readHeader). */
  readonly kind: 'linear-probe' | 'finetune';
  w: Float64Array;
  m: Float64Array;
  v: Float64Array;
  t = 0;
  constructor(
    readonly dim: number,
    readonly lr: number,
    seed: number,
    headOnly = false,
  ) {
    this.kind = headOnly ? 'linear-probe' : 'finetune';
    const r = mulberry32(seed + 1);
    this.w = Float64Array.from({ length: (dim + 1) * K }, () => (r() - 0.5) * 0.01);
    this.m = new Float64Array(this.w.length);
    this.v = new Float64Array(this.w.length);
  }
  private logit(x: Float32Array, i: number, k: number) {
    const d = this.dim;
    let s = this.w[k * (d + 1) + d]!;
    for (let j = 0; j < d; j++) s += this.w[k * (d + 1) + j]! * x[i * d + j]!;
    return s;
  }
  async trainStep(x: Float32Array, n: number, labels: Float32Array, mask?: Float32Array) {
    const d = this.dim;
    const g = new Float64Array(this.w.length);
    let loss = 0;
    let cnt = 0;
    for (let i = 0; i < n; i++)
      for (let k = 0; k < K; k++) {
        if (mask && !(mask[i * K + k]! > 0.5)) continue;
        const p = 1 / (1 + Math.exp(-this.logit(x, i, k)));
        const y = labels[i * K + k]!;
        loss += -(y * Math.log(p + 1e-9) + (1 - y) * Math.log(1 - p + 1e-9));
        cnt++;
        for (let j = 0; j < d; j++) g[k * (d + 1) + j]! += (p - y) * x[i * d + j]!;
        g[k * (d + 1) + d]! += p - y;
      }
    this.t++;
    for (let q = 0; q < g.length; q++) {
      const gq = g[q]! / Math.max(cnt, 1);
      this.m[q] = 0.9 * this.m[q]! + 0.1 * gq;
      this.v[q] = 0.999 * this.v[q]! + 0.001 * gq * gq;
      const mh = this.m[q]! / (1 - 0.9 ** this.t);
      const vh = this.v[q]! / (1 - 0.999 ** this.t);
      this.w[q] = this.w[q]! - this.lr * (mh / (Math.sqrt(vh) + 1e-8) + 1e-4 * this.w[q]!);
    }
    return { loss: cnt ? loss / cnt : 0 };
  }
  async predict(x: Float32Array, n: number) {
    const out = new Float32Array(n * K);
    for (let i = 0; i < n; i++)
      for (let k = 0; k < K; k++) out[i * K + k] = 1 / (1 + Math.exp(-this.logit(x, i, k)));
    return out;
  }
  // atomic, with the link policy asked for, as Classifier.save (a run saves each checkpoint once)
  async save(path: string, o: { links?: LinkPolicy } = {}) {
    writeFileAtomic(
      path,
      JSON.stringify({
        kind: this.kind,
        dim: this.dim,
        w: Array.from(this.w),
        m: Array.from(this.m),
        v: Array.from(this.v),
        t: this.t,
      }),
      { links: o.links ?? 'follow' },
    );
  }
  async load(path: string) {
    const s = JSON.parse(readFileSync(path, 'utf8'));
    this.w = Float64Array.from(s.w);
    this.m = Float64Array.from(s.m);
    this.v = Float64Array.from(s.v);
    this.t = s.t;
  }
  dispose() {}
}

export function fakeBackend(opts: FakeOptions & { beforeTrainStep?: () => void } = {}): Backend {
  const cache = fakeCache(opts);
  return {
    name: 'fake',
    openCache: () => cache,
    loadClip: async () => new FakeClip(),
    embedDim: () => new FakeClip().embedDim,
    loadTokenizer: () => ({
      contextLength: 8,
      encode: (texts: string[]) => {
        const out = new BigInt64Array(texts.length * 8);
        texts.forEach((t, i) => {
          for (let j = 0; j < 8; j++) out[i * 8 + j] = BigInt(t.charCodeAt(j * 3) || 0);
        });
        return out;
      },
    }),
    createClassifier: async (o: ClassifierOptions) => {
      const c = new FakeClassifier(
        o.modelDir ? PIX : o.inputDim!,
        o.lrHead ?? 1e-2,
        o.seed ?? 0,
        !o.modelDir,
      );
      const hook = opts.beforeTrainStep;
      if (hook) {
        const orig = c.trainStep.bind(c);
        c.trainStep = async (...a) => {
          hook();
          return orig(...a);
        };
      }
      return c;
    },
    readCheckpointHeader: async (path: string) => {
      const s = JSON.parse(readFileSync(path, 'utf8'));
      const headOnly = s.kind === 'linear-probe';
      return { kind: s.kind, headOnly, freezeEncoder: false, inputDim: s.dim, numLabels: K };
    },
    resolveDevice: (d) => (d === 'auto' ? 'cpu' : d),
    versions: () => ({ backend: 'fake' }),
  };
}

/** How often a backend loaded or read a model: CLIP towers, classifiers made, checkpoints loaded, headers read. */
export interface LoadCounts {
  loadClip: number;
  createClassifier: number;
  load: number;
  readCheckpointHeader: number;
  /** Towers loaded and not yet disposed. */
  liveClips: number;
}

/** `backend` with every model load counted in `counts` (the models it returns are its own, their load and dispose counted). */
export function countLoads<B extends ModelBackend>(backend: B): { backend: B; counts: LoadCounts } {
  const counts: LoadCounts = {
    loadClip: 0,
    createClassifier: 0,
    load: 0,
    readCheckpointHeader: 0,
    liveClips: 0,
  };
  const counted: B = {
    ...backend,
    loadClip: async (dir: string, device: string) => {
      counts.loadClip++;
      const c = await backend.loadClip(dir, device);
      counts.liveClips++;
      const dispose = c.dispose.bind(c);
      c.dispose = () => {
        counts.liveClips--;
        return dispose();
      };
      return c;
    },
    createClassifier: async (o: ClassifierOptions) => {
      counts.createClassifier++;
      const c = await backend.createClassifier(o);
      const load = c.load.bind(c);
      c.load = (path: string) => {
        counts.load++;
        return load(path);
      };
      return c;
    },
    readCheckpointHeader: (path: string) => {
      counts.readCheckpointHeader++;
      return backend.readCheckpointHeader(path);
    },
  };
  return { backend: counted, counts };
}

/**
 * The loads made while the run's phase `name` lasted (from its phase event to the next one): hand
 * `onEvent` to runExperiment, then read `loads()` — towers, headers read, classifiers made and loaded.
 */
export function loadsDuringPhase(
  counts: LoadCounts,
  name: string,
): {
  onEvent: (e: { kind: string; name?: string }) => void;
  loads: () => { clip: number; headers: number; made: number; load: number };
} {
  let before: LoadCounts | null = null;
  let after: LoadCounts | null = null;
  const step = (k: keyof LoadCounts) => after![k] - before![k];
  return {
    onEvent: (e) => {
      if (e.kind !== 'phase') return;
      if (e.name === name) before = { ...counts };
      else if (before && !after) after = { ...counts };
    },
    loads: () => ({
      clip: step('loadClip'),
      headers: step('readCheckpointHeader'),
      made: step('createClassifier'),
      load: step('load'),
    }),
  };
}
