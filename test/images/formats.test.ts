/** The file forms real datasets use, decoded to the same 8-bit plane: 16-bit PNG by its real bit depth, RGBA and palette PNG. */
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bitsFor, pngSignificantBits, sampleBits } from '../../ts/images/bit-depth.js';
import { decodeFull, decodePlane, resolvePreprocess } from '../../ts/images/preprocess.js';

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
  assert.equal(
    [bitsFor(0), bitsFor(255), bitsFor(256), bitsFor(4095), bitsFor(4096), bitsFor(65535)],
    [8, 8, 9, 12, 13, 16],
  );
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
  assert.equal([sampleBits(twelve, 12), sampleBits(spec, 12), sampleBits(darkShifted, 12)], [12, 16, 16]);
  // the old reading (values in the low 12 bits) left 94 % of such an image white
  assert.ok(maxDiff((await decodeFull(replicated)).gray, gray8) <= 1);
  const dark = (await decodeFull(shifted)).gray;
  assert.is(Math.max(...dark), Math.round(((255 << 4) * 255) / 65535));
});

test('16-bit PNGs with alpha (grey+alpha, RGBA, grey with tRNS) decode to the gray plane, the alpha dropped', async () => {
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

test.run();
