/** model.json, written by tools/export_biomedclip.py beside clip.pt (docs/contracts.md). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import { readJsonFile } from '../common/io.js';
import { firstIssue, intInRange, nonNegativeInt, positiveInt, rule } from '../common/options.js';
import { isSourceCheckout, packageRoot } from '../native.js';

/**
 * How to make a missing model folder: the exporter shipped in the package (it works from a consumer's
 * project), plus scripts/setup.sh only in a clone (an installed package has no scripts/ or tools/ there).
 */
export function exportAdvice(
  args: string,
  clone: boolean = isSourceCheckout(),
  root: string = packageRoot,
): string {
  return `\`npx cxrmask export ${args}\`${clone ? ` (or, in the clone: \`cd ${root} && bash scripts/setup.sh\`)` : ''}`;
}

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
 * The largest image side preprocessing makes (images/preprocess.ts uses this one): a model.json asking
 * for more would fail on every image, and its load-time probe would allocate S² floats for nothing.
 */
export const MAX_IMAGE_SIZE = 2048;

const imageSize = intInRange(1, MAX_IMAGE_SIZE);

/** Three finite numbers (`positive`: each > 0, a std divides by them). */
const triple = (positive: boolean) =>
  rule<[number, number, number]>(
    (v) =>
      Array.isArray(v) &&
      v.length === 3 &&
      v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0)),
    (v) => `must be 3 finite numbers${positive ? ' > 0' : ''}, got ${JSON.stringify(v) ?? String(v)}`,
  );

/**
 * The fields the models read (sizes, normalisation), checked when model.json is read: a wrong one
 * used to pass the load and fail later without naming the file (an imageSize at the first image, a
 * fractional padId as a BigInt error, std 0 as infinite inputs). Other fields pass as they are.
 */
const ModelMetaSchema = z.looseObject({
  embedDim: positiveInt,
  imageSize,
  contextLength: positiveInt,
  padId: nonNegativeInt.optional(),
  mean: triple(false),
  std: triple(true),
});

const SegmenterMetaSchema = z.looseObject({
  imageSize,
  mean: triple(false),
  std: triple(true),
});

function readMetaJson(file: string): Record<string, unknown> {
  return readJsonFile(file, 'model.json', { maxBytes: MAX_MODEL_JSON_BYTES });
}

/** model.json checked with `schema`; a field that fails is a ConfigError naming the file and the field. */
function checkMeta<T>(file: string, raw: Record<string, unknown>, schema: z.ZodType): T {
  const r = firstIssue(schema, raw);
  if (r.ok) return r.data as T;
  const problem = raw[r.field] === undefined ? 'is missing' : r.issue.message;
  throw new ConfigError(`${file}: field ${r.field} ${problem}`, { cause: r.error });
}

/**
 * model.json of an exported model folder. A folder without one is the user's setting: a ConfigError
 * saying how to export a model.
 * @throws {ConfigError} no model.json, or one that is not a JSON object, over 1 MiB, or has a size or
 *   normalisation field missing or out of range (the message names the file and the field).
 * @throws {DataError} `not-a-file`: model.json is a FIFO, device or folder.
 */
export function readModelMeta(dir: string): ModelMeta {
  const p = join(dir, 'model.json');
  if (!existsSync(p)) {
    throw new ConfigError(
      `model folder ${dir} has no model.json; export one with ${exportAdvice('--random-init tiny --out models/tiny')}`,
    );
  }
  return checkMeta<ModelMeta>(p, readMetaJson(p), ModelMetaSchema);
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

/**
 * model.json of a segmenter folder, checked as readModelMeta checks an export's.
 * @throws {ConfigError} no model.json, or one that is not a segmenter's or has a field missing or out
 *   of range (the message names the file and the field).
 * @throws {DataError} `not-a-file`: model.json is a FIFO, device or folder.
 */
export function readSegmenterMeta(dir: string): SegmenterMeta {
  const p = join(dir, 'model.json');
  if (!existsSync(p)) {
    throw new ConfigError(
      `segmenter folder ${dir} has no model.json; export one with ${exportAdvice('--segmenter unet-tiny --out models/seg-tiny')}`,
    );
  }
  const raw = readMetaJson(p);
  // an export of another kind (a CLIP folder given as the segmenter) is named as such, not by its fields
  if (raw.kind !== 'segmenter')
    throw new ConfigError(`${p}: field kind is ${JSON.stringify(raw.kind) ?? 'missing'}, not 'segmenter'`);
  return checkMeta<SegmenterMeta>(p, raw, SegmenterMetaSchema);
}
