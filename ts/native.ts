/**
 * Loads the native addon (build/Release/cxrmask_native.node) once. On failure the error says what
 * to install. Everything else in ts/model goes through `loadNative()`.
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeError } from './common/errors.js';

import { threadsProblem } from './common/threads.js';

/** Where a model runs: 'cpu', 'cuda' (the first GPU), 'cuda:N', or 'auto' (a GPU when there is one). */
export type DeviceSpec = 'cpu' | 'cuda' | 'auto' | `cuda:${number}`;

/** What `diagnostics()` reports. */
export interface Diagnostics {
  torch: { version: string; cxx11Abi: boolean; cudaBuild: boolean; linkedVia: string };
  cuda: {
    available: boolean;
    deviceCount: number;
    version: string;
    cudnn: boolean;
    devices: { index: number; name: string }[];
    /** TF32 for float32 convolutions (cuDNN) and matmuls (cuBLAS): setTf32. */
    tf32: { cudnn: boolean; cublas: boolean };
  };
  blas: { blas: string; lapack: string; mkl: boolean; mkldnn: boolean; mkldnnVersion: string; fast: boolean };
  cpu: { bf16: boolean; capability: string };
  threads: { intraOp: number; interOp: number; requested: number };
  buildConfig: string;
  parallelInfo: string;
  addonPath: string;
}

/** Paint spec for Uint8Array record inputs (ts/model/records.ts). */
export interface NativePixels {
  mean: number[];
  std: number[];
  paint: Float32Array;
  original: boolean;
  masked: boolean;
}

declare const heldBrand: unique symbol;
/**
 * An op input taken when the call was made (holdImages/holdArray): copied, or a borrowed view of
 * `hostBytes` memory. Opaque; every op accepts it where it accepts the array it was made from.
 */
export interface NativeHeld {
  readonly [heldBrand]: true;
}

/** An image-op input: float32 images/features, uint8 cache records, or either held (NativeHeld). */
export type NativeImages = Float32Array | Uint8Array | NativeHeld;

/** The typed arrays DICOM stored cells come in. */
export type DicomCells = Uint8Array | Int8Array | Uint16Array | Int16Array;

/**
 * What a classifier step resolves with. `losses`: every step's loss since the last step that read
 * them, oldest first, this step's last; empty (and loss/gradNorm NaN) for a step run with readLoss
 * false, which does not wait for the device.
 */
export interface NativeStepResult {
  step: number;
  loss: number;
  gradNorm: number;
  losses: number[];
}

/** Attribution options as the addon takes them (validated in ts/model/attribution.ts). */
export interface NativeAttributionOptions {
  method: 'gradient' | 'smoothgrad' | 'ig';
  samples: number;
  sigma: number;
  steps: number;
  batch: number;
  seed: number;
  signed: boolean;
  bf16: boolean;
  baseline: Float32Array | NativeHeld | null;
  /** Classifier: the label whose logit is explained. */
  label?: number;
  /** ClipModel: prompt embeddings [textRows, D]. */
  text?: Float32Array | NativeHeld;
  textRows?: number;
  /** ClipModel: explain a linear probe's logit, embedding·text + linearBias (text [1,D]); null: the zero-shot logit. */
  linearBias?: number | null;
}

export interface NativeAttribution {
  map: Float32Array;
  score: Float32Array;
  signed?: Float32Array;
  baselineScore?: Float32Array;
}

export interface NativeClipModel {
  encodeImage(x: NativeImages, shape: number[], bf16: boolean, pixels?: NativePixels): Promise<Float32Array>;
  encodeText(ids: BigInt64Array | NativeHeld, shape: number[]): Promise<Float32Array>;
  attribute(
    x: NativeImages,
    shape: number[],
    pixels: NativePixels | undefined,
    options: NativeAttributionOptions,
  ): Promise<NativeAttribution>;
  dispose(): void;
  readonly device: string;
  readonly logitScale: number;
  readonly bf16Supported: boolean;
  readonly disposed: boolean;
}

export interface NativeClassifierOptions {
  modelPath: string | null;
  inputDim: number;
  numLabels: number;
  device: string;
  lrEncoder: number;
  lrHead: number;
  weightDecay: number;
  freezeEncoder: boolean;
  gradClip: number;
  bf16: boolean;
  seed: number;
  imageSize: number;
}

/** A classifier's facts as the addon reports them. */
export interface NativeClassifierInfo {
  inputDim: number;
  numLabels: number;
  headOnly: boolean;
  bf16Active: boolean;
  device: string;
  step: number;
}

/** What a classifier checkpoint says about itself (native Classifier::ReadHeader). */
export interface NativeClassifierHeader {
  format: number;
  /** 'linear-probe' (a head over a fixed image tower) or 'finetune' (encoder and head trained). */
  kind: string;
  /** false for a file written before the kind was recorded: `kind` then follows headOnly/freezeEncoder. */
  kindRecorded: boolean;
  headOnly: boolean;
  freezeEncoder: boolean;
  weightsOnly: boolean;
  inputDim: number;
  numLabels: number;
  step: number;
}

export interface NativeClassifier {
  trainStep(
    x: NativeImages,
    shape: number[],
    labels: Float32Array | NativeHeld,
    labelMask: Float32Array | NativeHeld | null,
    pixels: NativePixels | undefined,
    readLoss: boolean,
  ): Promise<NativeStepResult>;
  /** The losses steps run with readLoss false left on the device; `loss` is the last of them. */
  readLosses(): Promise<NativeStepResult>;
  predict(x: NativeImages, shape: number[], pixels?: NativePixels): Promise<Float32Array>;
  embed(x: NativeImages, shape: number[], pixels?: NativePixels): Promise<Float32Array>;
  attribute(
    x: NativeImages,
    shape: number[],
    pixels: NativePixels | undefined,
    options: NativeAttributionOptions,
  ): Promise<NativeAttribution>;
  save(path: string, weightsOnly?: boolean): Promise<void>;
  load(path: string): Promise<void>;
  info(): NativeClassifierInfo;
  /** Copies of the head's weight [numLabels*inputDim] (row-major) and bias [numLabels]. */
  headWeights(): Promise<{ weight: Float32Array; bias: Float32Array }>;
  /** Data-parallel steps over a process group (null detaches); broadcasts rank 0's weights first. */
  attachGroup(group: NativeProcessGroup | null): Promise<void>;
  /** A data-parallel step for a replica without rows (joins the group's all-reduce). */
  idleStep(readLoss: boolean): Promise<NativeStepResult>;
  dispose(): void;
  readonly disposed: boolean;
}

export interface NativeProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  backend: 'gloo' | 'nccl';
  timeoutMs: number;
  device: string;
}

/** torch.distributed's C++ engine (c10d): TCPStore rendezvous + ProcessGroupGloo / ProcessGroupNCCL. */
export interface NativeProcessGroup {
  allReduce(values: Float32Array): Promise<Float32Array>;
  broadcast(values: Float32Array): Promise<Float32Array>;
  /** timeoutMs > 0 replaces the group timeout for this wait. */
  barrier(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
  info(): {
    rank: number;
    worldSize: number;
    backend: string;
    device: string;
    masterAddr: string;
    masterPort: number;
    closed: boolean;
  };
}

export interface NativeSegmenterOptions {
  modelPath: string;
  device: string;
  lr: number;
  weightDecay: number;
  gradClip: number;
  bf16: boolean;
}

/** A segmenter's facts as the addon reports them. */
export interface NativeSegmenterInfo {
  numParams: number;
  bf16Active: boolean;
  device: string;
  step: number;
}

/** native/js_segmenter.cc (ts/model/segmenter.ts validates the arguments). */
export interface NativeSegmenter {
  trainStep(
    x: NativeImages,
    shape: number[],
    regionBits: Uint8Array | NativeHeld | null,
    pixels?: NativePixels,
  ): Promise<{ loss: number; dice: number; gradNorm: number; step: number }>;
  logits(x: NativeImages, shape: number[], pixels?: NativePixels): Promise<Float32Array>;
  predictMasks(
    x: NativeImages,
    shape: number[],
    threshold: number,
    pixels?: NativePixels,
  ): Promise<Uint8Array>;
  save(path: string, weightsOnly?: boolean): Promise<void>;
  load(path: string): Promise<void>;
  info(): NativeSegmenterInfo;
  dispose(): void;
  readonly disposed: boolean;
}

export interface NativeBinding {
  ClipModel: { load(path: string, device: string): Promise<NativeClipModel> };
  Classifier: {
    create(options: NativeClassifierOptions): Promise<NativeClassifier>;
    readHeader(path: string): Promise<NativeClassifierHeader>;
  };
  ProcessGroup: {
    create(options: NativeProcessGroupOptions): Promise<NativeProcessGroup>;
    backends(): { gloo: boolean; nccl: boolean };
  };
  Segmenter: { create(options: NativeSegmenterOptions): Promise<NativeSegmenter> };
  diagnostics(): Omit<Diagnostics, 'addonPath'>;
  setThreads(n: number): void;
  getThreads(): number;
  setGraphOptimize(mode: boolean | 'auto'): void;
  setTf32(enabled: boolean): void;
  recordsToImages(
    records: Uint8Array,
    shape: number[],
    pixels: NativePixels,
    device: string,
  ): Promise<Float32Array>;
  /**
   * A 16-bit gray plane scaled to 0–255 from its real bit depth (ts/images/bit-depth.ts), on a libuv
   * pool thread. `sbit`: the PNG's sBIT value, or null. The pool thread reads `samples` in place: do
   * not transfer, detach or write its buffer until the promise settles.
   */
  gray16To8(samples: Uint16Array, sbit: number | null): Promise<{ bits: number; gray: Buffer }>;
  /**
   * DICOM cells as codes, `(cell >> shift) & mask` (ts/images/dicom.ts), on a libuv pool thread:
   * dicomCodes gives mask + 1 bytes, 1 where a cell has that code; dicomApplyLut gives lut[code] per
   * cell. The pool thread reads `cells` in place: do not transfer, detach or write its buffer until
   * the promise settles.
   */
  dicomCodes(cells: DicomCells, shift: number, mask: number): Promise<Buffer>;
  dicomApplyLut(cells: DicomCells, shift: number, mask: number, lut: Uint8Array): Promise<Buffer>;
  allocHostBuffer(bytes: number): ArrayBuffer;
  /** Takes an image-op input now (copied, or borrowed when it is hostBytes memory). */
  holdImages(x: Float32Array | Uint8Array, shape: number[], pixels?: NativePixels): NativeHeld;
  /** Takes a Float32Array, Uint8Array or BigInt64Array now; `name` is used in its errors. */
  holdArray(x: Float32Array | Uint8Array | BigInt64Array, name: string): NativeHeld;
  /** The class failed ops reject with (called once, at load). */
  setErrorClass(ctor: typeof NativeError): void;
}

/** The package root (this file is ts/native.ts or dist/native.js). */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the addon is looked for: $CXRMASK_ADDON, then build/Release. */
export function addonCandidates(): string[] {
  const env = process.env['CXRMASK_ADDON'];
  return [...(env ? [resolve(env)] : []), join(packageRoot, 'build', 'Release', 'cxrmask_native.node')];
}

/**
 * Whether `root` is a source checkout (a clone: it has .git or ts/) rather than an installed package.
 * Advice that only works from a clone (scripts/setup.sh, tools/*.py, raw cmake-js) is given only there:
 * `npx` in a consumer's project runs in that project, where `cmake-js rebuild` wipes the project's own build/.
 */
export function isSourceCheckout(root: string = packageRoot): boolean {
  return existsSync(join(root, '.git')) || existsSync(join(root, 'ts'));
}

/**
 * What the "cannot load the addon" error suggests; the cmake-js lines only in a clone, and with a `cd` to
 * it: a clone linked into a project (`npm link`, `file:`) is read from that project's folder.
 */
export function addonHelp(clone: boolean = isSourceCheckout(), root: string = packageRoot): string {
  return [
    'Possible solutions:',
    '  - run `npx cxrmask setup` (what `npm install` runs: finds LibTorch or creates the pinned Python venv with',
    '    torch in ~/.cache/cxrmask, then builds the addon); with an unpacked LibTorch zip (cxx11 ABI):',
    '    `LIBTORCH=/path/to/libtorch npx cxrmask setup`,',
    '  - npm skips dependency install scripts it has not been allowed to run: `npm install-scripts approve cxrmask`,',
    '  - "libtorch*.so: cannot open shared object file" means the LibTorch it was built against moved or was',
    '    removed: run `npx cxrmask setup` again (with LIBTORCH=/path for a LibTorch zip).',
    ...(clone
      ? [
          `  - in the clone (${root}), \`cd ${root} && bash scripts/setup.sh\` does the same and more; or build it`,
          `    yourself there: \`cd ${root} && npx cmake-js compile\` (\`rebuild\` after LibTorch moved) with`,
          '    `python3 -c "import torch"` working on PATH or LIBTORCH=/path/to/libtorch set.',
        ]
      : []),
  ].join('\n');
}

let cached: { binding: NativeBinding; path: string } | null = null;

/**
 * The addon's binding, loaded once from the first of addonCandidates() that loads (later calls return
 * the same binding).
 * @throws {Error} no candidate exists or loads (e.g. a missing libtorch*.so); the message lists each
 *   path with its reason, then what to install or rebuild. A failed load is not cached: a later call
 *   tries again.
 */
export function loadNative(): NativeBinding {
  if (cached) return cached.binding;
  const require = createRequire(import.meta.url);
  const errors: string[] = [];
  for (const p of addonCandidates()) {
    if (!existsSync(p)) {
      errors.push(`${p}: not built`);
      continue;
    }
    try {
      const binding = require(p) as NativeBinding;
      binding.setErrorClass(NativeError);
      cached = { binding, path: p };
      return cached.binding;
    } catch (e) {
      errors.push(`${p}: ${(e as Error).message}`);
    }
  }
  throw new Error(
    `cannot load the cxrmask native addon (LibTorch):\n  ${errors.join('\n  ')}\n${addonHelp()}`,
  );
}

/** Path of the loaded addon (loads it if needed). */
export function addonPath(): string {
  loadNative();
  return cached!.path;
}

/** torch version, CUDA availability and devices, BLAS, threads, addon path. */
export function diagnostics(): Diagnostics {
  const d = loadNative().diagnostics();
  return { ...d, addonPath: addonPath() };
}

/**
 * Intra-op threads used by every later native op (applied inside the worker threads too).
 * @throws {RangeError} `n` is not a positive integer, or is above MAX_THREADS (ts/common/threads.ts).
 * @throws {Error} the addon cannot be loaded (loadNative).
 */
export function setThreads(n: number): void {
  const problem = threadsProblem(n);
  if (problem) throw new RangeError(`threads: ${problem}`);
  loadNative().setThreads(n);
}

export function getThreads(): number {
  return loadNative().getThreads();
}

/**
 * TorchScript graph-executor optimisation for later ops: 'auto' (default) = on for inference, off for
 * training steps (on the ViT the optimised plan slows a CPU training step and speeds inference up by a
 * few per cent; docs/native.md); true/false force it.
 * @throws {TypeError} `mode` is not true, false or 'auto'.
 * @throws {Error} the addon cannot be loaded (loadNative).
 */
export function setGraphOptimize(mode: boolean | 'auto'): void {
  if (typeof mode !== 'boolean' && mode !== 'auto')
    throw new TypeError(`mode must be true, false or 'auto', got ${String(mode)}`);
  loadNative().setGraphOptimize(mode);
}

/**
 * TF32 for float32 work on CUDA, process-wide, for later ops: true lets cuDNN convolutions and cuBLAS
 * matmuls round their inputs to TF32 (faster, ~1e-3 relative error), false keeps full float32 (what a
 * comparison against a CPU reference needs). Torch's defaults, kept until this is called: cuDNN on, cuBLAS
 * off. `diagnostics().cuda.tf32` reports the current state. No effect on CPU or under bf16 autocast.
 * @throws {TypeError} `enabled` is not a boolean.
 * @throws {Error} the addon cannot be loaded (loadNative).
 */
export function setTf32(enabled: boolean): void {
  if (typeof enabled !== 'boolean') throw new TypeError(`enabled must be a boolean, got ${String(enabled)}`);
  loadNative().setTf32(enabled);
}
