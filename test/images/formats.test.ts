/** The file forms real datasets use, decoded to the same 8-bit plane: 16-bit PNG by its real bit depth, RGBA and palette PNG. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gray16To8, pngSignificantBits } from '../../ts/images/bit-depth.js';
import { decodeFull, decodePlane, resolvePreprocess } from '../../ts/images/preprocess.js';
import { imageSource } from '../../ts/images/source.js';
import { cc0Image, FIXTURES } from '../data/helpers.js';
import { loopTicksDuring } from './loop-ticks.js';

const W = 96;
const H = 80;
/** A smooth test pattern, 0..max. */
function pattern(max: number): number[] {
  const v: number[] = [];
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) v.push(Math.round(((x + y) / (W + H - 2)) * max));
  return v;
}
const gray8 = Buffer.from(pattern(255));

async function png16(values: number[]): Promise<Buffer> {
  return sharp(Uint16Array.from(values), { raw: { width: W, height: H, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
}

/** The PNG with an sBIT chunk stating `bits` inserted after IHDR. */
function withSbit(png: Buffer, bits: number): Buffer {
  const ihdrEnd = 8 + 12 + png.readUInt32BE(8);
  const body = Buffer.concat([Buffer.from('sBIT', 'latin1'), Buffer.from([bits])]);
  const chunk = Buffer.alloc(4 + body.length + 4);
  chunk.writeUInt32BE(1, 0);
  body.copy(chunk, 4);
  chunk.writeUInt32BE(crc32(body), 4 + body.length);
  return Buffer.concat([png.subarray(0, ihdrEnd), chunk, png.subarray(ihdrEnd)]);
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  assert.is(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

test('bit depth: sBIT read from the PNG, else the fewest bits holding the maximum (at least 8)', async () => {
  const p = await png16(pattern(4095));
  assert.is(pngSignificantBits(p), null);
  assert.is(pngSignificantBits(withSbit(p, 12)), 12);
  assert.is(pngSignificantBits(Buffer.from('not a png')), null);
  const bitsFor = async (max: number) => (await gray16To8(Uint16Array.of(0, max), null)).bits;
  assert.equal(await Promise.all([0, 255, 256, 4095, 4096, 65535].map(bitsFor)), [8, 8, 9, 12, 13, 16]);
});

test('16-bit PNG holding 12-bit values decodes to the full 8-bit range, as the 8-bit image of the same picture', async () => {
  const twelve = await png16(pattern(4095));
  const full = await decodeFull(twelve);
  assert.is(full.gray.length, W * H);
  assert.is(Math.max(...full.gray), 255);
  assert.ok(maxDiff(full.gray, gray8) <= 1, `max diff ${maxDiff(full.gray, gray8)}`);
  // scaling by 65535 instead would leave it nearly black (max 16)
  const naive = await sharp(twelve).grayscale().raw().toBuffer();
  assert.is(Math.max(...naive), 16);
  // the resized plane agrees with the 8-bit image's plane
  const pp = resolvePreprocess({ size: 32 });
  const a = await decodePlane(twelve, pp);
  const b = await decodePlane(
    await sharp(gray8, { raw: { width: W, height: H, channels: 1 } })
      .png()
      .toBuffer(),
    pp,
  );
  assert.ok(maxDiff(a.gray, b.gray) <= 1, `max diff ${maxDiff(a.gray, b.gray)}`);
});

test('16-bit PNG: the sBIT chunk wins over the maximum; full-range 16-bit is left as is', async () => {
  // 10 significant bits stated, darkest image only reaches 511: scaled by 10 bits, not by 9
  const p = withSbit(await png16(pattern(511)), 10);
  const g = (await decodeFull(p)).gray;
  assert.ok(Math.abs(Math.max(...g) - Math.round((511 / 1023) * 255)) <= 1, `max ${Math.max(...g)}`);
  const full = await decodeFull(await png16(pattern(65535)));
  assert.ok(maxDiff(full.gray, gray8) <= 1);
});

test('16-bit PNG written as the PNG spec says (12-bit samples scaled up to 16 bits, sBIT 12) reads as 16 bits', async () => {
  const twelve = pattern(4095);
  const spec = twelve.map((v) => (v << 4) | (v >> 8)); // the spec's left bit replication
  const darkShifted = pattern(255).map((v) => v << 4); // low bits all zero
  const replicated = withSbit(await png16(spec), 12);
  const shifted = withSbit(await png16(darkShifted), 12);
  const bits = async (v: number[]) => (await gray16To8(Uint16Array.from(v), 12)).bits;
  assert.equal([await bits(twelve), await bits(spec), await bits(darkShifted)], [12, 16, 16]);
  // the old reading (values in the low 12 bits) left 94 % of such an image white
  assert.ok(maxDiff((await decodeFull(replicated)).gray, gray8) <= 1);
  const dark = (await decodeFull(shifted)).gray;
  assert.is(Math.max(...dark), Math.round(((255 << 4) * 255) / 65535));
});

test('16-bit PNGs with alpha (grey+alpha, RGBA, grey with tRNS) decode to the gray plane when opaque', async () => {
  const values = Uint16Array.from(pattern(65535));
  const grey = () => sharp(values, { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16');
  const greyAlpha = await grey().ensureAlpha(1).png().toBuffer();
  const rgba = await grey().toColourspace('rgb16').ensureAlpha(1).png().toBuffer();
  const plain = await grey().png().toBuffer();
  // a tRNS chunk (transparent grey value 0) after IHDR
  const ihdrEnd = 8 + 12 + plain.readUInt32BE(8);
  const body = Buffer.concat([Buffer.from('tRNS', 'latin1'), Buffer.from([0, 0])]);
  const trns = Buffer.alloc(4 + body.length + 4);
  trns.writeUInt32BE(2, 0);
  body.copy(trns, 4);
  trns.writeUInt32BE(crc32(body), 4 + body.length);
  const withTrns = Buffer.concat([plain.subarray(0, ihdrEnd), trns, plain.subarray(ihdrEnd)]);
  assert.equal(
    [(await sharp(greyAlpha).metadata()).channels, (await sharp(rgba).metadata()).channels],
    [2, 4],
  );
  assert.ok((await sharp(withTrns).metadata()).hasAlpha);
  for (const b of [greyAlpha, rgba, withTrns]) {
    const d = await decodeFull(b);
    assert.ok(maxDiff(d.gray, gray8) <= 1, `max diff ${maxDiff(d.gray, gray8)}`);
  }
});

test('gray+alpha at 8 and 16 bits: one rule, alpha composited onto black (transparent reads black)', async () => {
  // The pattern with a fully transparent band (rows 30-44) and a half-transparent one (rows 60-69).
  const alpha = (y: number) => (y >= 30 && y < 45 ? 0 : y >= 60 && y < 70 ? 128 : 255);
  const la8 = Buffer.alloc(W * H * 2);
  const la16 = new Uint16Array(W * H * 2);
  const want = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) {
    const a = alpha(Math.floor(i / W));
    la8[2 * i] = gray8[i];
    la8[2 * i + 1] = a;
    la16[2 * i] = gray8[i] * 257;
    la16[2 * i + 1] = a * 257;
    want[i] = Math.floor((gray8[i] * a) / 255); // libvips' flatten truncates
  }
  const png8 = await sharp(la8, { raw: { width: W, height: H, channels: 2 } })
    .toColourspace('b-w')
    .png()
    .toBuffer();
  const png16 = await sharp(la16, { raw: { width: W, height: H, channels: 2 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  const meta = [await sharp(png8).metadata(), await sharp(png16).metadata()];
  assert.equal(
    meta.map((m) => [m.channels, m.depth]),
    [
      [2, 'uchar'],
      [2, 'ushort'],
    ],
  );
  const full = [await decodeFull(png8), await decodeFull(png16)];
  for (const d of full) assert.is(maxDiff(d.gray, want), 0);
  assert.is(full[0].gray[35 * W + 50], 0);
  assert.is(full[1].gray[35 * W + 50], 0);
  // The bit depth comes from the gray alone: 12-bit values whose only ones above 10 bits are transparent.
  const deep = new Uint16Array(W * H * 2);
  for (let i = 0; i < W * H; i++) {
    const hidden = Math.floor(i / W) === 0;
    deep[2 * i] = hidden ? 4095 : 1000;
    deep[2 * i + 1] = hidden ? 0 : 65535;
  }
  const deepPng = await sharp(deep, { raw: { width: W, height: H, channels: 2 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  const deepSrc = await imageSource(deepPng);
  assert.is(deepSrc.bits, 12);
  const deepGray = await deepSrc.open().raw().toBuffer();
  assert.equal([deepGray[0], deepGray[W]], [0, Math.round((1000 * 255) / 4095)]);
  // Through a resize (shrunk and enlarged) the two depths still agree, and match the composited 8-bit gray.
  const flat = await sharp(Buffer.from(want), { raw: { width: W, height: H, channels: 1 } })
    .png()
    .toBuffer();
  for (const size of [48, 128]) {
    const pp = resolvePreprocess({ size });
    const [a, b, c] = [
      await decodePlane(png8, pp),
      await decodePlane(png16, pp),
      await decodePlane(flat, pp),
    ];
    assert.is(maxDiff(a.gray, b.gray), 0, `${size}: 8 vs 16 bits`);
    assert.is(maxDiff(a.gray, c.gray), 0, `${size}: vs the composited gray`);
  }
});

test('RGBA and palette PNGs decode to the same gray plane as the gray image', async () => {
  const base = () => sharp(gray8, { raw: { width: W, height: H, channels: 1 } });
  const rgba = await base().toColourspace('srgb').ensureAlpha(1).png().toBuffer();
  const palette = await base().png({ palette: true, colours: 256, dither: 0 }).toBuffer();
  assert.is((await sharp(rgba).metadata()).channels, 4);
  assert.ok((await sharp(palette).metadata()).isPalette);
  for (const b of [rgba, palette]) {
    const d = await decodeFull(b);
    assert.is(maxDiff(d.gray, gray8), 0);
    const pl = await decodePlane(b, resolvePreprocess({ size: 32 }));
    assert.is(pl.gray.length, 32 * 32);
  }
});

/** The bit depth as JavaScript worked it out before the addon did (gray16To8 must match it exactly). */
function jsSampleBits(values: Uint16Array, sbit: number | null): number {
  let max = 0;
  let low = 0;
  const lowMask = sbit !== null && sbit < 16 ? 2 ** (16 - sbit) - 1 : 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > max) max = v;
    low |= v & lowMask;
  }
  if (sbit === null) {
    let bits = 8;
    while (bits < 16 && max > 2 ** bits - 1) bits++;
    return bits;
  }
  if (max > 2 ** sbit - 1 || (low === 0 && max > 0)) return 16;
  return sbit;
}

/** The JavaScript scaling formula gray16To8 replaced. */
function jsScaleTo8(values: Uint16Array, bits: number): Buffer {
  const k = 255 / (2 ** bits - 1);
  const out = Buffer.alloc(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.min(255, Math.round(values[i]! * k));
  return out;
}

test('gray16To8 gives the JavaScript formula byte for byte: every value at every bit depth it can be scaled from', async () => {
  for (let bits = 8; bits <= 16; bits++) {
    const values = new Uint16Array(2 ** bits).map((_, v) => v);
    const r = await gray16To8(values, null);
    assert.is(r.bits, bits);
    assert.ok(r.gray.equals(jsScaleTo8(values, bits)), `bits ${bits}`);
    for (let sbit = 1; sbit <= 16; sbit++) {
      const shifted = values.map((v) => (v << (16 - bits)) & 0xffff);
      for (const v of [values, shifted]) {
        const q = await gray16To8(v, sbit);
        assert.is(q.bits, jsSampleBits(v, sbit), `bits ${bits} sbit ${sbit}`);
        assert.ok(q.gray.equals(jsScaleTo8(v, q.bits)), `bits ${bits} sbit ${sbit}`);
      }
    }
  }
});

test('a 16-bit PNG of a real X-ray decodes to the bytes the JavaScript formula gave: 12-bit, with and without sBIT', async () => {
  const sources = [join(FIXTURES, 'phantom-640x768.jpg'), cc0Image()].filter((p) => p !== null);
  for (const file of sources) {
    const { data, info } = await sharp(readFileSync(file))
      .grayscale()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const raw = { width: info.width, height: info.height, channels: 1 as const };
    const twelve = Uint16Array.from(data, (v) => Math.round((v * 4095) / 255));
    const png = await sharp(twelve, { raw }).toColourspace('grey16').png().toBuffer();
    const spec = await sharp(
      twelve.map((v) => (v << 4) | (v >> 8)),
      { raw },
    )
      .toColourspace('grey16')
      .png()
      .toBuffer();
    for (const p of [png, withSbit(png, 12), withSbit(png, 14), withSbit(spec, 12)]) {
      const samples = await sharp(p).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer();
      const values = new Uint16Array(samples.buffer, samples.byteOffset, samples.length / 2);
      const expected = jsScaleTo8(values, jsSampleBits(values, pngSignificantBits(p)));
      const got = await decodeFull(p);
      assert.equal([got.width, got.height], [info.width, info.height]);
      assert.ok(Buffer.from(got.gray).equals(expected), `${file} sBIT ${pngSignificantBits(p)}`);
    }
  }
});

test('gray16To8 runs off the JS thread: setImmediate callbacks run while a 2500×3000 plane is converted', async () => {
  const values = new Uint16Array(2500 * 3000).map((_, i) => (i * 7) & 0xfff);
  const { result: r, ticks } = await loopTicksDuring(() => gray16To8(values, null));
  assert.is(r.bits, 12);
  assert.ok(ticks > 0, 'no setImmediate callback ran while the plane was converted');
});

test.run();
