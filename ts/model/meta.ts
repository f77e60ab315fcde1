/** model.json, written by tools/export_biomedclip.py beside clip.pt (docs/contracts.md). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { refuseNonFile } from '../common/files.js';

/** model.json is a few hundred bytes; anything past this is not one. */
const MAX_MODEL_JSON_BYTES = 1024 * 1024;

/** model.json of an export folder: the preset, sizes, normalisation and the torch that wrote it. */
export interface ModelMeta {
  preset: string;
  source?: string;
  embedDim: number;
  imageSize: number;
  patchSize?: number;
  contextLength: number;
  vocabSize?: number;
  padId?: number;
  mean: [number, number, number];
  std: [number, number, number];
  logitScale?: number;
  visionWidth?: number;
  torchVersion?: string;
  files?: { model?: string; tokenizer?: string; reference?: string };
  [k: string]: unknown;
}

/**
 * model.json of an exported model folder. A folder without one is the user's setting: a ConfigError
 * saying how to export a model.
 */
export function readModelMeta(dir: string): ModelMeta {
  const p = join(dir, 'model.json');
  if (!existsSync(p)) {
    throw new ConfigError(
      `model folder ${dir} has no model.json; export one with ` +
        '`python tools/export_biomedclip.py --random-init tiny --out models/tiny` (or run scripts/setup.sh)',
    );
  }
  const st = refuseNonFile(p);
  if (st && st.size > MAX_MODEL_JSON_BYTES)
    throw new Error(`${p}: ${st.size} bytes, over the ${MAX_MODEL_JSON_BYTES} a model.json may have`);
  const meta = JSON.parse(readFileSync(p, 'utf8')) as ModelMeta;
  for (const k of ['embedDim', 'imageSize', 'contextLength'] as const) {
    if (typeof meta[k] !== 'number') throw new Error(`${p}: field ${k} is missing or not a number`);
  }
  return meta;
}

export function modelFile(dir: string, meta: ModelMeta): string {
  return join(dir, meta.files?.model ?? 'clip.pt');
}

/** model.json of a segmenter, written by tools/segmenter_export.py beside seg.pt. */
export interface SegmenterMeta {
  kind: 'segmenter';
  preset: string;
  imageSize: number;
  mean: [number, number, number];
  std: [number, number, number];
  structures?: string[];
  params?: number;
  files?: { model?: string; reference?: string };
  [k: string]: unknown;
}

export function readSegmenterMeta(dir: string): SegmenterMeta {
  const p = join(dir, 'model.json');
  if (!existsSync(p)) {
    throw new Error(
      `segmenter folder ${dir} has no model.json; export one with ` +
        '`python tools/segmenter_export.py --random-init unet-tiny --out models/seg-tiny` (or run scripts/setup.sh)',
    );
  }
  const meta = JSON.parse(readFileSync(p, 'utf8')) as SegmenterMeta;
  if (meta.kind !== 'segmenter') throw new Error(`${p}: kind is ${String(meta.kind)}, not 'segmenter'`);
  if (typeof meta.imageSize !== 'number') throw new Error(`${p}: field imageSize is missing or not a number`);
  for (const k of ['mean', 'std'] as const) {
    const v = meta[k];
    if (!Array.isArray(v) || v.length !== 3) throw new Error(`${p}: field ${k} must be 3 numbers`);
  }
  return meta;
}
