/**
 * Property-based fuzzing of the CheXmask input path: the CSV scanner, the RLE decoder, the landmark
 * parser and the row parser. Random and mutated inputs must give a valid result or our DataError,
 * never a TypeError/RangeError, within bounded time and memory. Seeded, so failures replay.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { joinChexmask, parseChexmaskRecord } from '../../ts/data/chexmask.js';
import { CsvScanner, KEEP } from '../../ts/data/csvscan.js';
import {
  formatLandmarksFlat,
  formatLandmarksNumpy,
  parseLandmarks,
  parseLandmarksBytes,
} from '../../ts/data/landmarks.js';
import { decodeRle, encodeRle, parseRle, rleBytesValid } from '../../ts/data/rle.js';
import { csvParse, scanAll } from './csvscan-helpers.js';
import { tempDir } from './helpers.js';

const SEED = 20240611;
const dir = tempDir();
let nfile = 0;
function write(data: string | Uint8Array): string {
  const p = join(dir, `z${nfile++}.csv`);
  writeFileSync(p, data);
  return p;
}

/** Runs `f`; a DataError is an accepted outcome, anything else thrown fails the property. */
function dataErrorOk<T>(f: () => T): T | DataError {
  try {
    return f();
  } catch (e) {
    if (e instanceof DataError) return e;
    throw e;
  }
}
async function dataErrorOkAsync<T>(f: () => Promise<T>): Promise<T | DataError> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof DataError) return e;
    throw e;
  }
}

/** A time budget per case: a hang shows up as a failure, not a stuck test run. */
function within(ms: number, t0: number, what: string): void {
  const dt = performance.now() - t0;
  if (dt > ms) throw new Error(`${what} took ${dt.toFixed(0)} ms (budget ${ms} ms)`);
}

const cellChars = fc.constantFrom('a', '1', ' ', ',', '"', '\n', '\r', 'é', '[', '-');
const cell = fc.string({ unit: cellChars, maxLength: 12 });

test('scanner: RFC-4180 files read back exactly as csv-parse reads them, at any chunk size', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(cell, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 8 }),
      fc.boolean(),
      fc.integer({ min: 1, max: 40 }),
      async (records, crlf, chunkBytes) => {
        const nl = crlf ? '\r\n' : '\n';
        const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
        // Quote every cell: the form where csv-parse and the scanner must agree byte for byte.
        const text = records.map((r) => r.map(q).join(',')).join(nl) + nl;
        const t0 = performance.now();
        assert.equal(await scanAll(write(text), { chunkBytes }), csvParse(text));
        within(2000, t0, 'scan');
      },
    ),
    { seed: SEED, numRuns: 400 },
  );
});

test('scanner: random and mutated bytes give records or a DataError, never another error', async () => {
  const base = 'dicom_id,Landmarks,Heart\na,"[[1 2]\n [3 4]]",1 5\r\nb,"x ""y"" z",\n';
  const mutated = fc
    .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 })
    .map((muts) => {
      const b = Buffer.from(base);
      for (const [at, v] of muts) b[at % b.length] = v;
      return b;
    });
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated),
      fc.integer({ min: 1, max: 64 }),
      async (bytes, chunkBytes) => {
        const p = write(bytes);
        const t0 = performance.now();
        await dataErrorOkAsync(async () => {
          const sc = await CsvScanner.open(p, { chunkBytes, maxFieldBytes: 50 });
          try {
            let n = 0;
            while (await sc.next(new Uint8Array([KEEP, KEEP]))) n++;
            return n;
          } finally {
            await sc.close();
          }
        });
        await dataErrorOkAsync(() => joinChexmask(p, ['a', 'b'], { chunkBytes, maxFieldBytes: 64 }));
        within(2000, t0, 'scan');
      },
    ),
    { seed: SEED, numRuns: 600 },
  );
});

const rleText = fc.oneof(
  fc.string({
    unit: fc.constantFrom('0', '1', '2', '9', ' ', ' ', '\t', '\n', '-', 'x', 'n', 'a'),
    maxLength: 40,
  }),
  fc.array(fc.nat({ max: 2 ** 33 }), { maxLength: 10 }).map((a) => a.join(' ')),
);
const side = fc.oneof(
  fc.integer({ min: -2, max: 12 }),
  fc.constantFrom(0.5, Number.NaN, 1e6, 2 ** 31, 1e300),
);

test('RLE: any text and any size gives runs or a DataError; byte check agrees with parseRle', () => {
  fc.assert(
    fc.property(rleText, side, side, (s, h, w) => {
      const t0 = performance.now();
      const r = dataErrorOk(() => parseRle(s, h, w));
      if (!(r instanceof DataError)) {
        // Runs never reach past the mask, and the decoded mask has exactly H×W pixels.
        for (let k = 0; k < r.length; k += 2) assert.ok(r[k] + r[k + 1] <= h * w);
        assert.is(decodeRle(s, h, w).length, h * w);
        const t = s.trim().toLowerCase();
        if (t !== '' && t !== 'nan') assert.ok(rleBytesValid(Buffer.from(s), h, w), `bytes reject "${s}"`);
      } else if (!/^\s*(nan)?\s*$/i.test(s)) {
        assert.not.ok(rleBytesValid(Buffer.from(s), h, w), `bytes accept "${s}" (${r.message})`);
      }
      within(200, t0, 'parseRle');
    }),
    { seed: SEED, numRuns: 10000 },
  );
});

test('RLE: a run that covers more than H×W is refused before any H×W allocation', () => {
  // 1e5 × 1e5 would be a 10 GB mask; the size check refuses it first.
  const e = dataErrorOk(() => decodeRle('1 5', 100000, 100000));
  assert.instance(e, DataError);
  assert.match((e as Error).message, /over the \d+-pixel limit/);
  const many = dataErrorOk(() => parseRle('1 4 1 4 1 4', 2, 4));
  assert.match((many as Error).message, /cover 12 pixels, more than the 2×4 mask/);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 64 }), fc.integer({ min: 1, max: 8 }), (m, h) => {
      const w = Math.floor(m.length / h) || 1;
      const mask = m.subarray(0, h * w).map((v) => v & 1);
      if (mask.length !== h * w) return;
      assert.equal(Array.from(decodeRle(encodeRle(mask, h, w), h, w)), Array.from(mask));
    }),
    { seed: SEED, numRuns: 300 },
  );
});

const lmText = fc.oneof(
  fc.string({
    unit: fc.constantFrom('1', '7', '-', '+', '.', 'e', 'E', 'n', 'a', '[', ']', ' ', ',', '\n', 'x'),
    maxLength: 60,
  }),
  fc.array(fc.double({ noNaN: true }), { minLength: 240, maxLength: 240 }).map((a) => a.join(',')),
  fc
    .array(fc.integer({ min: -5000, max: 5000 }), { minLength: 238, maxLength: 242 })
    .chain((a) => fc.constantFrom(formatLandmarksFlat(a), formatLandmarksNumpy(a))),
);

test('landmarks: any text gives 240 numbers or a DataError; the byte parser agrees exactly', () => {
  fc.assert(
    fc.property(lmText, (s) => {
      const r = dataErrorOk(() => parseLandmarks(s));
      const rb = dataErrorOk(() => parseLandmarksBytes(Buffer.from(s)));
      if (!(r instanceof DataError)) {
        assert.is(r.length, 240);
        assert.ok(r.every((v) => !Number.isNaN(v)));
        assert.equal(Array.from(rb as Float64Array), Array.from(r), 'the byte parser reads the same numbers');
      } else assert.is((rb as Error).message, r.message, 'the byte parser fails the same way');
    }),
    { seed: SEED, numRuns: 3000 },
  );
});

test('row parser: any record (strings, numbers, nulls, odd sizes) gives a row or a DataError', () => {
  const value = fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.double(),
    fc.string({ maxLength: 8 }),
    fc.constantFrom('nan', '', ' 4 ', '1e400', '-3', '0.9'),
  );
  const goodLm = formatLandmarksFlat(Array.from({ length: 240 }, (_, i) => i));
  fc.assert(
    fc.property(
      fc.record({
        dicom_id: value,
        'Dice RCA (Mean)': value,
        'Dice RCA (Max)': value,
        Landmarks: fc.oneof(lmText, fc.constant(goodLm)),
        'Left Lung': rleText,
        'Right Lung': rleText,
        Heart: rleText,
        Height: fc.oneof(value, side),
        Width: fc.oneof(value, side),
      }),
      fc.boolean(),
      (rec, keepRle) => {
        const t0 = performance.now();
        const r = dataErrorOk(() => parseChexmaskRecord(rec, { keepRle }));
        if (!(r instanceof DataError)) assert.is(r.landmarks.length, 240);
        within(200, t0, 'parseChexmaskRecord');
      },
    ),
    { seed: SEED, numRuns: 5000 },
  );
});

test('memory stays bounded: a huge unwanted or skipped cell is not held', async () => {
  const big = '1 1 '.repeat(8 << 20); // 32 MB RLE cell
  const p = write(
    `dicom_id,Dice RCA (Mean),Landmarks,Left Lung,Right Lung,Heart,Height,Width\nx,0.9,"1,2",${big},,,4,4\n`,
  );
  const before = process.memoryUsage().rss;
  const { summary } = await joinChexmask(p, ['x'], { source: 'landmarks', chunkBytes: 1 << 20 });
  assert.is(summary.refused.counts['bad-landmarks'], 1);
  const grew = process.memoryUsage().rss - before;
  assert.ok(grew < 24 << 20, `RSS grew ${grew >> 20} MB for a 32 MB skipped cell`);
});

test.run();
