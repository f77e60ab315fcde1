/**
 * DICOM decoding (VinDr-CXR): MONOCHROME1 inverted (or as Presentation LUT Shape says), High Bit,
 * rescale slope/intercept and the VOI window applied, native and compressed transfer syntaxes, against
 * DCMTK's rendering of the same file; refusals name the fix. Fixtures are made here (dicom-writer.ts) or
 * by DCMTK (fixtures/make_dicom_fixtures.sh).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeJ2k } from '../../bench/j2k.js';
import { DICOM_CONVERSION, decodeDicom, dicomSize, isDicom, TRANSFER_SYNTAX } from '../../ts/images/dicom.js';
import { DATASET_FORMATS } from '../../ts/images/input.js';
import { decodeFull, decodePlane, resolvePreprocess } from '../../ts/images/preprocess.js';
import { type DicomCells, loadNative } from '../../ts/native.js';
import { loopTicksDuring } from './loop-ticks.js';

/** Dataset files may be DICOM; callers' images (serve, predict) may not. */
const dataset = { formats: [...DATASET_FORMATS] };

import { type DicomFixture, writeDicom } from '../../ts/synth/dicom.js';

const FIX = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'fixtures');
const W = 64;
const H = 48;

/** The 12-bit stored values of mono1Fixture. */
function mono1Values(): Uint16Array {
  const v = new Uint16Array(W * H);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      v[y * W + x] =
        Math.round(((x + y) / (W + H - 2)) * 4095 * (0.6 + 0.4 * Math.sin(x / 5) * Math.cos(y / 7))) & 4095;
  return v;
}

/** The uncompressed twin of fixtures/mono1-12bit-jpeg-lossless.dcm (same values, same tags). */
export function mono1Fixture(over: Partial<DicomFixture> = {}): Buffer {
  return writeDicom({
    width: W,
    height: H,
    values: mono1Values(),
    bitsStored: 12,
    photometric: 'MONOCHROME1',
    slope: 2,
    intercept: -1024,
    window: [1500, 3000],
    ...over,
  });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** DCMTK's `dcmj2pnm +Wi 1` rendering of mono1Fixture (fixtures/make_dicom_fixtures.sh). */
async function dcmtkMono1(): Promise<Buffer> {
  return sharp(readFileSync(join(FIX, 'mono1-12bit-dcmtk.png')))
    .grayscale()
    .raw()
    .toBuffer();
}

test('without a window the first VOI LUT of the VOI LUT Sequence maps the values (clamped at both ends)', async () => {
  const values = Uint16Array.from({ length: W * H }, (_, i) => (i * 37) % 4096);
  const first = 100;
  const data = Array.from({ length: 3000 }, (_, i) => Math.round(255 * (i / 2999) ** 2));
  const buf = writeDicom({ width: W, height: H, values, bitsStored: 12, voiLut: { first, bits: 8, data } });
  const img = await decodeDicom(buf);
  assert.is(img.window, null);
  const want = Array.from(values, (v) => data[Math.min(data.length - 1, Math.max(0, v - first))]!);
  assert.equal(Array.from(img.gray), want);
  // a window, when there is one, still wins (as before)
  const windowed = await decodeDicom(
    writeDicom({
      width: W,
      height: H,
      values,
      bitsStored: 12,
      window: [2048, 4096],
      voiLut: { first, bits: 8, data },
    }),
  );
  assert.equal(windowed.window, [2048, 4096]);
  // an item too short for its descriptor is refused, not read past its end
  const short = writeDicom({ width: W, height: H, values, bitsStored: 12, voiLut: { first, bits: 8, data } });
  const at = short.indexOf(Buffer.from([0x28, 0x00, 0x02, 0x30]));
  short.writeUInt16LE(4000, at + 8); // entries: 4000 > the 3000 stored
  await decodeDicom(short).then(
    () => assert.unreachable('read past the LUT data'),
    (e: Error) => assert.match(e.message, /VOI LUT Data holds 6000 bytes, 4000 16-bit entries needed/),
  );
});

test('native and JPEG Lossless DICOM decode alike and match DCMTK (rescale, VOI window, MONOCHROME1)', async () => {
  const native = await decodeDicom(mono1Fixture());
  const jll = await decodeDicom(readFileSync(join(FIX, 'mono1-12bit-jpeg-lossless.dcm')));
  assert.is(jll.transferSyntax, '1.2.840.10008.1.2.4.70');
  assert.equal([native.width, native.height, native.window], [W, H, [1500, 3000]]);
  assert.is(maxDiff(native.gray, jll.gray), 0);
  const ref = await dcmtkMono1();
  assert.ok(maxDiff(native.gray, ref) <= 1, `vs DCMTK: ${maxDiff(native.gray, ref)}`);
  // the window is not the min-max: values beyond it saturate
  assert.ok(native.gray.filter((g) => g === 255).length > 50);
});

test('MONOCHROME1 is the inverse of MONOCHROME2; slope/intercept move the window; min-max without one', async () => {
  const m1 = await decodeDicom(mono1Fixture());
  const m2 = await decodeDicom(mono1Fixture({ photometric: 'MONOCHROME2' }));
  for (let i = 0; i < m1.gray.length; i++) assert.is(m1.gray[i] + m2.gray[i], 255);
  // x -> 2x - 1024 with window (1500, 3000) equals x with window ((1500+1024)/2, 1500)
  const noRescale = await decodeDicom(
    mono1Fixture({
      photometric: 'MONOCHROME2',
      slope: undefined,
      intercept: undefined,
      window: [1262, 1500.5],
    }),
  );
  assert.ok(maxDiff(m2.gray, noRescale.gray) <= 1, `${maxDiff(m2.gray, noRescale.gray)}`);
  const mm = await decodeDicom(mono1Fixture({ photometric: 'MONOCHROME2', window: undefined }));
  assert.is(mm.window, null);
  assert.is(Math.min(...mm.gray), 0);
  assert.is(Math.max(...mm.gray), 255);
});

test('Presentation LUT Shape (2050,0020) decides the polarity over MONOCHROME1/2, as DCMTK renders it', async () => {
  // dcmj2pnm +Wi 1 (3.6.7) on these files: MONOCHROME2 + INVERSE gives the MONOCHROME1 picture and
  // MONOCHROME1 + IDENTITY its inverse, within 1 level; an unknown shape is ignored (DCMTK warns)
  const ref = await dcmtkMono1();
  const m1 = (await decodeDicom(mono1Fixture())).gray;
  const flipped = Array.from(m1, (g) => 255 - g);
  const shaped = async (photometric: 'MONOCHROME1' | 'MONOCHROME2', presentationLutShape: string) =>
    Array.from((await decodeDicom(mono1Fixture({ photometric, presentationLutShape }))).gray);
  assert.equal(await shaped('MONOCHROME2', 'INVERSE'), Array.from(m1));
  assert.equal(await shaped('MONOCHROME1', 'INVERSE'), Array.from(m1));
  assert.equal(await shaped('MONOCHROME1', 'IDENTITY'), flipped);
  assert.equal(await shaped('MONOCHROME2', 'IDENTITY'), flipped);
  assert.equal(await shaped('MONOCHROME1', 'LIN OD'), Array.from(m1));
  assert.ok(maxDiff(await shaped('MONOCHROME2', 'INVERSE'), ref) <= 1);
  const refFlipped = Array.from(ref, (g) => 255 - g);
  assert.ok(maxDiff(await shaped('MONOCHROME1', 'IDENTITY'), refFlipped) <= 1);
});

test('High Bit above Bits Stored − 1: values are shifted down (signed too); an impossible High Bit is refused', async () => {
  const m1 = await decodeDicom(mono1Fixture());
  // 12 bits stored in the top of the cell (High Bit 15), the low bits garbage: the same picture, and
  // DCMTK's within 1 level
  const top = Array.from(mono1Values(), (v) => (v << 4) | 0x9);
  const hb15 = await decodeDicom(mono1Fixture({ values: top, highBit: 15 }));
  assert.equal(Array.from(hb15.gray), Array.from(m1.gray));
  assert.ok(maxDiff(hb15.gray, await dcmtkMono1()) <= 1);
  // High Bit 13: garbage on both sides of the value
  const mid = Array.from(mono1Values(), (v) => (v << 2) | 0xc001);
  const hb13 = await decodeDicom(mono1Fixture({ values: mid, highBit: 13 }));
  assert.equal(Array.from(hb13.gray), Array.from(m1.gray));
  // signed: sign-extended from bit 15, not from bit 11 of the cell
  const vals = [-2048, -1, 0, 2047, -1000, 1000];
  const signed = await decodeDicom(
    writeDicom({
      width: 3,
      height: 2,
      values: vals.map((v) => ((v << 4) | 0x5) & 0xffff),
      bitsStored: 12,
      highBit: 15,
      signed: true,
    }),
  );
  assert.equal([...signed.gray], [0, 127, 128, 255, 65, 190]); // min-max over -2048..2047
  // below Bits Stored − 1 or outside the cell
  for (const [highBit, bitsStored, bitsAllocated] of [
    [10, 12, 16],
    [16, 12, 16],
    [8, 8, 8],
  ] as const)
    await decodeDicom(
      writeDicom({ width: 2, height: 1, values: [1, 2], bitsAllocated, bitsStored, highBit }),
    ).then(
      () => assert.unreachable(`High Bit ${highBit} accepted`),
      (e: Error) =>
        assert.is(
          e.message,
          `High Bit (0028,0102) ${highBit} is impossible with Bits Stored ${bitsStored} and Bits Allocated ${bitsAllocated} (it must be ${bitsStored - 1} to ${bitsAllocated - 1})`,
        ),
    );
});

test("a header cut off mid-element is refused with dicom-parser's reason, not [object Object]", async () => {
  const buf = mono1Fixture();
  const at = buf.indexOf(Buffer.from([0x28, 0x00, 0x50, 0x10])); // Window Center, before Pixel Data
  const cut = buf.subarray(0, at + 5);
  const reason = 'not a readable DICOM file: dicomParser.readFixedString: attempt to read past end of buffer';
  assert.throws(
    () => dicomSize(cut),
    (e: Error) => e.message === reason,
  );
  await decodeDicom(cut).then(
    () => assert.unreachable(),
    (e: Error) => assert.is(e.message, reason),
  );
  await decodePlane(cut, resolvePreprocess({ size: 16 }), dataset).then(
    () => assert.unreachable(),
    (e: Error) => assert.is(e.message, `<buffer>: cannot read the image header: ${reason}`),
  );
});

test('signed pixels and bits above Bits Stored are handled', async () => {
  const vals = [-2048, -1, 0, 2047, -1000, 1000];
  const stored = vals.map((v) => (v < 0 ? v + 65536 : v)); // two's complement in 16 bits
  const d = await decodeDicom(
    writeDicom({
      width: 3,
      height: 2,
      values: stored,
      bitsStored: 16,
      signed: true,
      photometric: 'MONOCHROME2',
    }),
  );
  // min-max over -2048..2047: (v + 2048) / 4095 * 255, rounded
  assert.equal([...d.gray], [0, 127, 128, 255, 65, 190]);
  // 12 bits stored, garbage in the top 4 bits: masked away
  const g = await decodeDicom(
    writeDicom({ width: 2, height: 1, values: [0xf000, 0xafff], bitsStored: 12, photometric: 'MONOCHROME2' }),
  );
  assert.equal([...g.gray], [0, 255]);
});

test('JPEG 2000 DICOM (OpenJPEG) decodes to the native values', async () => {
  const [w, h] = [160, 120];
  const { frame, values } = await j2kFrame(w, h);
  const j2k = await decodeDicom(
    writeDicom({ width: w, height: h, bitsStored: 12, transferSyntax: '1.2.840.10008.1.2.4.90', frame }),
  );
  const native = await decodeDicom(writeDicom({ width: w, height: h, bitsStored: 12, values }));
  assert.is(maxDiff(j2k.gray, native.gray), 0);
});

test('unsupported transfer syntax, colour, short pixel data: clear errors; preprocess names the file', async () => {
  const jls = writeDicom({
    width: 4,
    height: 4,
    transferSyntax: '1.2.840.10008.1.2.4.80',
    frame: new Uint8Array([0xff, 0xd8, 0xff, 0xd9]),
  });
  try {
    await decodeDicom(jls);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /transfer syntax 1\.2\.840\.10008\.1\.2\.4\.80 is not supported/);
    assert.ok((e as Error).message.includes(DICOM_CONVERSION));
  }
  await decodeDicom(
    writeDicom({ width: 2, height: 2, photometric: 'RGB', samplesPerPixel: 3, values: [] }),
  ).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /RGB with 3 samples per pixel is not a gray X-ray/),
  );
  const short = mono1Fixture().subarray(0, 2000);
  await decodeDicom(short).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /pixel data|DICOM/),
  );
  await decodePlane(jls, resolvePreprocess({ size: 16 }), dataset).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /cannot decode image: transfer syntax .* not supported/),
  );
});

test('the image pipeline takes DICOM like any image: isDicom, decodeFull, decodePlane', async () => {
  const buf = mono1Fixture();
  assert.ok(isDicom(buf));
  assert.not.ok(isDicom(Buffer.from('not dicom')));
  await decodeFull(buf).then(
    () => assert.unreachable('a caller image (JPEG/PNG only by default) took DICOM'),
    (e) => assert.match(e.message, /not a JPEG or PNG file/),
  );
  const full = await decodeFull(buf, dataset);
  assert.equal([full.width, full.height], [W, H]);
  assert.is(maxDiff(full.gray, (await decodeDicom(buf)).gray), 0);
  const plane = await decodePlane(buf, resolvePreprocess({ size: 32 }), dataset);
  assert.is(plane.gray.length, 32 * 32);
  assert.equal([plane.geometry.srcW, plane.geometry.srcH], [W, H]);
  // The pixel cap reads Rows × Columns from the DICOM header, before any pixel is decoded.
  await decodePlane(buf, resolvePreprocess({ size: 32 }), { ...dataset, maxPixels: W * H - 1 }).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /over the limit of \d+ \(maxPixels\)/),
  );
});

/** A J2K codestream of w×h 12-bit gray values (a ramp), and the values. */
async function j2kFrame(w: number, h: number): Promise<{ frame: Uint8Array; values: Uint16Array }> {
  const values = Uint16Array.from({ length: w * h }, (_, i) => (i * 7) % 4096);
  return { frame: await encodeJ2k(values, w, h, { decompositions: 2 }), values };
}

/** Awaits `p`, which must be refused, and returns the message and the RSS growth it caused. */
async function refusedWithRss(p: () => Promise<unknown>): Promise<{ message: string; grewMB: number }> {
  const rss0 = process.memoryUsage().rss;
  try {
    await p();
  } catch (e) {
    return { message: (e as Error).message, grewMB: (process.memoryUsage().rss - rss0) / 2 ** 20 };
  }
  throw new Error('accepted');
}

test('a compressed frame larger than Rows × Columns is refused from its own header, before decoding', async () => {
  // 1.3 KB gzipped: a progressive JPEG declaring 16383×16383 (~800 MB to decode), in a 64×64 DICOM
  const bomb = gunzipSync(readFileSync(join(FIX, 'progressive-16383x16383.jpg.gz')));
  const baseline = writeDicom({
    width: 64,
    height: 64,
    bitsAllocated: 8,
    transferSyntax: TRANSFER_SYNTAX.jpegBaseline,
    frame: bomb,
  });
  const said =
    /JPEG frame is 16383×16383, the DICOM header says 64×64 \(Columns × Rows\); refusing to decode it/;
  for (const [what, call] of [
    ['decodeDicom', () => decodeDicom(baseline)],
    ['decodePlane', () => decodePlane(baseline, resolvePreprocess({ size: 32 }), dataset)],
  ] as const) {
    const r = await refusedWithRss(call);
    assert.match(r.message, said, `${what}: ${r.message}`);
    if (what === 'decodePlane') assert.match(r.message, /cannot decode image: JPEG frame is/);
    assert.ok(r.grewMB < 100, `${what}: RSS grew ${r.grewMB.toFixed(0)} MB`);
  }
  // JPEG Lossless: the DCMTK fixture with its SOF3 size bytes set to 16383×16383
  const jll = Buffer.from(readFileSync(join(FIX, 'mono1-12bit-jpeg-lossless.dcm')));
  const sof = jll.indexOf(Buffer.from([0xff, 0xc3]), jll.indexOf(Buffer.from([0xff, 0xd8, 0xff])));
  assert.ok(sof > 0);
  assert.equal([jll.readUInt16BE(sof + 5), jll.readUInt16BE(sof + 7)], [H, W]);
  jll.writeUInt16BE(16383, sof + 5);
  jll.writeUInt16BE(16383, sof + 7);
  const lossless = await refusedWithRss(() => decodeDicom(jll));
  assert.match(lossless.message, /JPEG Lossless frame is 16383×16383, the DICOM header says 64×48/);
  assert.ok(lossless.grewMB < 100, `lossless: RSS grew ${lossless.grewMB.toFixed(0)} MB`);
  // JPEG 2000: a 160×120 codestream whose SIZ (image and tile size) says 16383×16383
  const { frame } = await j2kFrame(160, 120);
  const siz = 4; // SOC (2) then the SIZ marker (2)
  assert.equal([frame[2], frame[3]], [0xff, 0x51]);
  const patched = Buffer.from(frame);
  for (const at of [4, 8, 20, 24]) patched.writeUInt32BE(16383, siz + at); // Xsiz, Ysiz, XTsiz, YTsiz
  const j2k = await refusedWithRss(() =>
    decodeDicom(
      writeDicom({
        width: 160,
        height: 120,
        bitsStored: 12,
        transferSyntax: TRANSFER_SYNTAX.jpeg2000,
        frame: patched,
      }),
    ),
  );
  assert.match(j2k.message, /JPEG 2000 frame is 16383×16383, the DICOM header says 160×120/);
  assert.ok(j2k.grewMB < 100, `JPEG 2000: RSS grew ${j2k.grewMB.toFixed(0)} MB`);
  // a frame smaller than the header is refused the same way, and a frame that is not JPEG at all
  await decodeDicom(
    writeDicom({ width: 64, height: 64, bitsStored: 12, transferSyntax: TRANSFER_SYNTAX.jpeg2000, frame }),
  ).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /JPEG 2000 frame is 160×120, the DICOM header says 64×64/),
  );
  await decodeDicom(
    writeDicom({ width: 4, height: 4, transferSyntax: TRANSFER_SYNTAX.jpegLosslessSV1, frame: frame }),
  ).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /JPEG Lossless frame header: JPEG frame has no SOI marker/),
  );
});

test('a JPEG 2000 frame of thousands of tiny tiles, or a truncated one, is refused by name', async () => {
  // 1500×1250 with its SIZ tile size set to 6×6: 52,250 tiles. OpenJPEG allocated every tile's coding
  // parameters (~0.5 GB that the WebAssembly heap keeps), then decoded the one tile it found: a
  // silently wrong image.
  const [w, h] = [1500, 1250];
  const { frame } = await j2kFrame(w, h);
  const tiny = Buffer.from(frame);
  tiny.writeUInt32BE(6, 24); // XTsiz (after SOC, SIZ, Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz)
  tiny.writeUInt32BE(6, 28); // YTsiz
  const dicom = (f: Uint8Array, W = w, H = h) =>
    writeDicom({ width: W, height: H, bitsStored: 12, transferSyntax: TRANSFER_SYNTAX.jpeg2000, frame: f });
  const refused = await refusedWithRss(() => decodeDicom(dicom(tiny)));
  assert.match(refused.message, /JPEG 2000 frame has 52250 tiles of 6×6; more than 4096 are refused/);
  assert.ok(refused.grewMB < 100, `RSS grew ${refused.grewMB.toFixed(0)} MB`);
  const zero = Buffer.from(frame);
  zero.writeUInt32BE(0, 24);
  await decodeDicom(dicom(zero)).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /JPEG 2000 SIZ tile size is 0×1250/),
  );
  // cut at 70 %: OpenJPEG reports a 0×0 frame, which is named as what it is
  const small = await j2kFrame(160, 120);
  const cut = small.frame.subarray(0, Math.floor(small.frame.length * 0.7));
  await decodeDicom(dicom(cut, 160, 120)).then(
    () => assert.unreachable(),
    (e) =>
      assert.match(e.message, /JPEG 2000 frame could not be decoded \(a truncated or corrupt codestream\)/),
  );
  // the codec still decodes a good frame afterwards
  const good = await decodeDicom(dicom(small.frame, 160, 120));
  assert.is(good.width, 160);
});

test('dicomCodes and dicomApplyLut give the bytes of the JavaScript formulas: (cell >> shift) & mask, signed and unsigned', async () => {
  const native = loadNative();
  const n = 20000;
  // every 16-bit pattern's edges plus a pseudo-random spread
  const bits = Uint16Array.from({ length: n }, (_, i) =>
    i < 16
      ? [0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0xfff, 0x1000][i % 8]
      : (i * 40503 + (i >> 3) * 977) & 0xffff,
  );
  const arrays: DicomCells[] = [
    bits,
    new Int16Array(bits.buffer),
    Uint8Array.from(bits, (v) => v & 0xff),
    Int8Array.from(bits, (v) => (v << 24) >> 24),
  ];
  // [bits stored, shift]: 8, 12 and 16 bits, and stored values above bit 0 (High Bit below the top)
  const layouts = [
    [8, 0],
    [12, 0],
    [12, 4],
    [12, 3],
    [16, 0],
    [8, 8],
    [1, 15],
  ] as const;
  for (const cells of arrays)
    for (const [bitsStored, shift] of layouts) {
      const mask = 2 ** bitsStored - 1;
      const seen = new Uint8Array(mask + 1);
      for (let i = 0; i < n; i++) seen[(cells[i] >> shift) & mask] = 1;
      const lut = Uint8Array.from({ length: mask + 1 }, (_, c) => (c * 131 + 7) & 0xff);
      const gray = Uint8Array.from(cells, (v) => lut[(v >> shift) & mask]);
      const what = `${cells.constructor.name} bits ${bitsStored} shift ${shift}`;
      assert.ok(Buffer.from(await native.dicomCodes(cells, shift, mask)).equals(seen), what);
      assert.ok(Buffer.from(await native.dicomApplyLut(cells, shift, mask, lut)).equals(gray), what);
    }
  // a LUT of the wrong size would be read past its end
  assert.throws(
    () => native.dicomApplyLut(bits, 0, 4095, new Uint8Array(256)),
    /lut must be a Uint8Array of mask \+ 1 entries/,
  );
  assert.throws(() => native.dicomCodes(bits, 0, 1000), /mask must be 2\^bits - 1/);
});

test('decodeDicom runs its per-pixel passes off the JS thread: setImmediate callbacks run while a 2500×3000 frame is decoded', async () => {
  const w = 2500;
  const h = 3000;
  const values = new Uint16Array(w * h).map((_, i) => (i * 7) & 0xfff);
  // without a window both passes (codes present, LUT) run; with one, only the LUT
  for (const window of [undefined, [2048, 4096] as [number, number]]) {
    const buf = writeDicom({
      width: w,
      height: h,
      values,
      bitsStored: 12,
      photometric: 'MONOCHROME2',
      window,
    });
    const { result: d, ticks } = await loopTicksDuring(() => decodeDicom(buf));
    assert.is(d.gray.length, w * h);
    const v = values[300]; // 2100
    assert.is(d.gray[300], Math.round((window ? (v - 2047.5) / 4095 + 0.5 : v / 4095) * 255));
    assert.ok(ticks > 0, `no setImmediate callback ran while the frame was decoded (window ${window})`);
  }
});

test.run();
