/**
 * The real model backend: ts/model/* over the LibTorch addon, bound to the interfaces of backend.ts.
 * The imports are static; the native addon itself is loaded on first use (ts/native.ts loadNative), so
 * commands that never touch a model (e.g. `--help`, config errors) do not load it.
 */
import { ConfigError } from '../common/errors.js';
import { type Diagnostics, diagnostics, setThreads } from '../native.js';
import type { CheckpointHeader, ModelBackend } from './backend.js';
import { Classifier, type ClassifierOptions } from './classifier.js';
import { ClipModel } from './clip.js';
import { MODEL_KINDS, type TrainedKind } from './kinds.js';
import type { ModelMeta } from './meta.js';
import { Segmenter } from './segmenter.js';
import { loadTokenizer } from './tokenizer.js';

/** Preprocessing options matching an exported model (size, mean, std). */
export function preprocessFor(
  meta: Partial<Pick<ModelMeta, 'imageSize' | 'mean' | 'std'>>,
): Record<string, unknown> {
  return {
    ...(meta.imageSize ? { size: meta.imageSize } : {}),
    ...(meta.mean ? { mean: meta.mean } : {}),
    ...(meta.std ? { std: meta.std } : {}),
  };
}

/** Classifier.readHeader, with a kind this version does not know refused by name. */
export async function readCheckpointHeader(path: string): Promise<CheckpointHeader> {
  const h = await Classifier.readHeader(path);
  if (!(MODEL_KINDS as readonly string[]).includes(h.kind) || h.kind === 'zeroshot')
    throw new ConfigError(`${path} records a model kind "${h.kind}" this version does not know`);
  return {
    kind: h.kind as TrainedKind,
    headOnly: h.headOnly,
    freezeEncoder: h.freezeEncoder,
    inputDim: h.inputDim,
    numLabels: h.numLabels,
  };
}

export function realModelBackend(): ModelBackend {
  let diag: Diagnostics | null = null;
  const diagnose = () => {
    diag ??= diagnostics();
    return diag;
  };
  return {
    name: 'libtorch',
    loadClip: (dir: string, device: string) => ClipModel.load(dir, { device: device as 'cpu' }),
    loadSegmenter: async (dir, weights, o) => {
      const seg = await Segmenter.load(dir, { device: o.device as 'cpu', threshold: o.threshold });
      await seg.load(weights).catch(async (e) => {
        await seg.dispose();
        throw e;
      });
      return seg;
    },
    loadTokenizer: (dir: string) => loadTokenizer(dir),
    createClassifier: (opts: ClassifierOptions) =>
      Classifier.create({ ...opts, device: opts.device as 'cpu' | undefined }),
    readCheckpointHeader,
    resolveDevice: (requested: string) => {
      if (requested !== 'auto') return requested;
      return diagnose().cuda?.available ? 'cuda' : 'cpu';
    },
    setThreads: (n: number) => {
      setThreads(n);
      // the recorded thread counts are read again: under --nproc the device was resolved first
      diag = null;
    },
    versions: () => {
      const d = diagnose();
      return {
        torch: d.torch?.version ?? null,
        cuda: d.cuda ?? null,
        blas: d.blas ?? null,
        threads: d.threads ?? null,
      };
    },
  };
}
