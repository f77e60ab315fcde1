/**
 * The JSON files of a model folder are read in one place each (model/meta.ts, model/tokenizer.ts,
 * common/io.ts readJsonFile): a folder without model.json is the user's setting, a ConfigError that
 * says how to export a model; a file that is not JSON, not an object, or has a field missing or out
 * of range is a ConfigError naming the file and the field, for every caller (ClipModel, tokenizer,
 * run, predictor, segmenter).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, DataError } from '../../ts/common/errors.js';
import { readJson } from '../../ts/common/io.js';
import { exportAdvice, readModelMeta, readSegmenterMeta } from '../../ts/model/meta.js';
import { loadTokenizer } from '../../ts/model/tokenizer.js';
import { MODEL_DIR, requireModel } from '../native/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-meta-'));
const SEG_DIR = join(process.cwd(), 'models', 'seg-tiny');

const GOOD = {
  preset: 'x',
  embedDim: 8,
  imageSize: 16,
  contextLength: 4,
  padId: 0,
  mean: [0, 0, 0],
  std: [1, 1, 1],
};

let n = 0;
/** A folder whose model.json is `text` (a string as written, anything else as JSON). */
function folder(text: unknown): string {
  const d = join(tmp, `m${n++}`);
  mkdirSync(d);
  writeFileSync(join(d, 'model.json'), typeof text === 'string' ? text : JSON.stringify(text));
  return d;
}

/** `f` throws `Class` with exactly `message`. */
function throwsExactly(f: () => unknown, Class: new (...a: never[]) => Error, message: string): void {
  try {
    f();
  } catch (e) {
    assert.instance(e, Class, String(e));
    assert.is((e as Error).message, message);
    return;
  }
  assert.unreachable(`expected: ${message}`);
}

test('a folder without model.json: a ConfigError naming it and the export command', () => {
  try {
    readModelMeta(tmp);
    assert.unreachable('no model.json');
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.match((e as Error).message, `model folder ${tmp} has no model.json`);
    // the shipped exporter works from a consumer's project; scripts/setup.sh only from this clone
    assert.match((e as Error).message, '`npx cxrmask export --random-init tiny --out models/tiny`');
    assert.match((e as Error).message, 'scripts/setup.sh');
  }
  try {
    readSegmenterMeta(tmp);
    assert.unreachable('no model.json');
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.match((e as Error).message, `segmenter folder ${tmp} has no model.json`);
    assert.match((e as Error).message, '`npx cxrmask export --segmenter unet-tiny --out models/seg-tiny`');
  }
});

test('an installed package names only the shipped exporter, never repo-only paths', () => {
  const advice = exportAdvice('--random-init tiny --out models/tiny', false);
  assert.is(advice, '`npx cxrmask export --random-init tiny --out models/tiny`');
  assert.not.match(advice, /setup\.sh|tools\//);
  // a clone linked into a project is read from that project's folder: the advice names the clone
  assert.match(
    exportAdvice('--random-init tiny --out models/tiny', true, '/src/cxrmask'),
    '`cd /src/cxrmask && bash scripts/setup.sh`',
  );
});

test('model.json that is not JSON, or not an object: a ConfigError naming the file', () => {
  const truncated = folder('{"preset": "tiny", ');
  try {
    readModelMeta(truncated);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.match(
      (e as Error).message,
      `${join(truncated, 'model.json')}: the model.json is not valid JSON (`,
    );
  }
  for (const [text, got] of [
    ['null', 'null'],
    ['[1,2]', 'an array'],
    ['7', 'number'],
  ] as const) {
    const d = folder(text);
    throwsExactly(
      () => readModelMeta(d),
      ConfigError,
      `${join(d, 'model.json')}: the model.json must hold a JSON object, got ${got}`,
    );
  }
});

test('a model.json saved with a byte-order mark reads as without one', () => {
  const d = folder(`\ufeff${JSON.stringify(GOOD)}`);
  assert.equal(readModelMeta(d), GOOD);
  // the run files' reader skips it too (one parse for both)
  assert.equal(readJson(join(d, 'model.json')), GOOD);
});

test('each size and normalisation field is checked at read, naming the file and the field', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ contextLength: undefined }, 'field contextLength is missing'],
    [{ imageSize: 1.5 }, 'field imageSize must be an integer from 1 to 2048, got 1.5'],
    [{ imageSize: 0 }, 'field imageSize must be an integer from 1 to 2048, got 0'],
    [{ imageSize: 100000 }, 'field imageSize must be an integer from 1 to 2048, got 100000'],
    [{ imageSize: '224' }, 'field imageSize must be an integer from 1 to 2048, got 224'],
    [{ embedDim: -1 }, 'field embedDim must be a positive integer, got -1'],
    [{ contextLength: 1e308 }, 'field contextLength must be a positive integer, got 1e+308'],
    [{ padId: 1.5 }, 'field padId must be a non-negative integer, got 1.5'],
    [{ padId: -1 }, 'field padId must be a non-negative integer, got -1'],
    [{ mean: [1, 2] }, 'field mean must be 3 finite numbers, got [1,2]'],
    [{ mean: [0, 0, null] }, 'field mean must be 3 finite numbers, got [0,0,null]'],
    [{ mean: undefined }, 'field mean is missing'],
    [{ std: [0, 0, 0] }, 'field std must be 3 finite numbers > 0, got [0,0,0]'],
    [{ std: 'x' }, 'field std must be 3 finite numbers > 0, got "x"'],
    [{ std: [1, -1, 1] }, 'field std must be 3 finite numbers > 0, got [1,-1,1]'],
  ];
  for (const [fields, problem] of cases) {
    const d = folder({ ...GOOD, ...fields });
    throwsExactly(() => readModelMeta(d), ConfigError, `${join(d, 'model.json')}: ${problem}`);
  }
  // padId may be left out; fields the models do not read pass as they are
  const { padId: _, ...noPad } = GOOD;
  assert.equal(readModelMeta(folder({ ...noPad, extra: { a: 1 } })), { ...noPad, extra: { a: 1 } });
});

test('a segmenter model.json: the same checks, the same 1 MiB cap and refusal of a FIFO', () => {
  const seg = { kind: 'segmenter', preset: 'unet-tiny', imageSize: 224, mean: [0, 0, 0], std: [1, 1, 1] };
  assert.equal(readSegmenterMeta(folder(seg)), seg);
  const truncated = folder('{"kind": "segm');
  assert.throws(
    () => readSegmenterMeta(truncated),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message.startsWith(`${join(truncated, 'model.json')}: the model.json is not valid JSON (`),
  );
  for (const [fields, problem] of [
    [{ imageSize: 128.5 }, 'field imageSize must be an integer from 1 to 2048, got 128.5'],
    [{ std: ['a', 'b', 'c'] }, 'field std must be 3 finite numbers > 0, got ["a","b","c"]'],
    [{ kind: 'clip' }, `field kind is "clip", not 'segmenter'`],
    [{ kind: undefined }, `field kind is missing, not 'segmenter'`],
  ] as const) {
    const d = folder({ ...seg, ...fields });
    throwsExactly(() => readSegmenterMeta(d), ConfigError, `${join(d, 'model.json')}: ${problem}`);
  }
  const big = folder({ ...seg, pad: 'x'.repeat(1024 * 1024) });
  const size = readFileSync(join(big, 'model.json')).length;
  throwsExactly(
    () => readSegmenterMeta(big),
    ConfigError,
    `${join(big, 'model.json')}: ${size} bytes, over the 1048576 a model.json may have`,
  );
  const fifo = join(tmp, 'fifo-seg');
  mkdirSync(fifo);
  execFileSync('mkfifo', [join(fifo, 'model.json')]);
  throwsExactly(
    () => readSegmenterMeta(fifo),
    DataError,
    `${join(fifo, 'model.json')}: not a regular file (a FIFO); refusing to read it`,
  );
  const noFile = join(tmp, 'no-seg');
  mkdirSync(noFile);
  assert.throws(
    () => readSegmenterMeta(noFile),
    (e: Error) => e instanceof ConfigError,
  );
});

test("the tokenizer's files: not JSON, not a tokenizer, or a folder are errors naming the file", () => {
  requireModel();
  const copy = (name: string, edit: (d: string) => void): string => {
    const d = join(tmp, name);
    cpSync(MODEL_DIR, d, { recursive: true });
    edit(d);
    return d;
  };
  const truncated = copy('tok-trunc', (d) =>
    writeFileSync(join(d, 'tokenizer.json'), readFileSync(join(d, 'tokenizer.json')).subarray(0, 500)),
  );
  assert.throws(
    () => loadTokenizer(truncated),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message.startsWith(`${join(truncated, 'tokenizer.json')}: the tokenizer.json is not valid JSON (`),
  );
  const config = copy('tok-cfg', (d) => writeFileSync(join(d, 'tokenizer_config.json'), '{bad'));
  assert.throws(
    () => loadTokenizer(config),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message.startsWith(
        `${join(config, 'tokenizer_config.json')}: the tokenizer_config.json is not valid JSON (`,
      ),
  );
  const empty = copy('tok-empty', (d) => writeFileSync(join(d, 'tokenizer.json'), '{}'));
  throwsExactly(
    () => loadTokenizer(empty),
    ConfigError,
    `${join(empty, 'tokenizer.json')}: not a tokenizer the library can load (Tokenizer must contain a "model" property)`,
  );
  const nul = copy('tok-null', (d) => writeFileSync(join(d, 'tokenizer.json'), 'null'));
  throwsExactly(
    () => loadTokenizer(nul),
    ConfigError,
    `${join(nul, 'tokenizer.json')}: the tokenizer.json must hold a JSON object, got null`,
  );
  const dir = copy('tok-dir', (d) => {
    rmSync(join(d, 'tokenizer.json'));
    mkdirSync(join(d, 'tokenizer.json'));
  });
  throwsExactly(
    () => loadTokenizer(dir),
    DataError,
    `${join(dir, 'tokenizer.json')}: not a regular file (a folder); refusing to read it`,
  );
});

test('the shipped exports read as before', () => {
  requireModel();
  assert.is(readModelMeta(MODEL_DIR).embedDim, 64);
  assert.is(readSegmenterMeta(SEG_DIR).imageSize, 224);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
