/**
 * Decode cost of the file forms the public datasets use, to the 224 gray plane (decodePlane), one
 * image at a time on one thread, against PIL doing the same decode + gray + bicubic resize:
 *   NIH ChestX-ray14  1024² 8-bit PNG
 *   PadChest          2000×2400 16-bit PNG holding 12-bit values (scaled by its real depth)
 *   VinDr-CXR         2048×2500 12-bit DICOM: native, JPEG Lossless (DCMTK's dcmcjpeg, when installed), JPEG 2000
 *
 *   node --import tsx bench/formats.ts [--n 6] [--python PATH]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { DATASET_FORMATS } from '../ts/images/input.js';
import { decodePlane, resolvePreprocess } from '../ts/images/preprocess.js';
import { writeDicom } from '../ts/synth/dicom.js';
import { median, pythonExe } from './common.js';
import { encodeJ2k } from './j2k.js';

const args = process.argv.slice(2);
const arg = (k: string, d: string) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? (args[i + 1] ?? d) : d;
};
const N = Number(arg('n', '6'));
const dir = mkdtempSync(join(tmpdir(), 'cxrmask-formats-'));

/** A smooth chest-like field with noise, 0..max. */
function field(w: number, h: number, max: number): number[] {
  const v: number[] = new Array(w * h);
  let s = 12345;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      s = (s * 1103515245 + 12345) & 0x7fffffff;
      const base = 0.5 + 0.3 * Math.sin(x / 97) * Math.cos(y / 131) + 0.15 * Math.sin((x + y) / 23);
      v[y * w + x] = Math.max(0, Math.min(max, Math.round((base + ((s % 1000) / 1000 - 0.5) * 0.05) * max)));
    }
  return v;
}

async function fixtures(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const nih = field(1024, 1024, 255);
  out['nih14 PNG 8-bit 1024²'] = join(dir, 'nih.png');
  await sharp(Buffer.from(nih), { raw: { width: 1024, height: 1024, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(out['nih14 PNG 8-bit 1024²']);
  const pc = field(2000, 2400, 4095);
  out['padchest PNG 16-bit 2000×2400'] = join(dir, 'padchest.png');
  await sharp(Uint16Array.from(pc), { raw: { width: 2000, height: 2400, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toFile(out['padchest PNG 16-bit 2000×2400']);
  const W = 2048;
  const H = 2500;
  const vd = field(W, H, 4095);
  const native = join(dir, 'vindr.dcm');
  writeFileSync(
    native,
    writeDicom({
      width: W,
      height: H,
      values: vd,
      bitsStored: 12,
      photometric: 'MONOCHROME1',
      window: [2048, 4000],
    }),
  );
  out['vindr DICOM native 2048×2500'] = native;
  const jll = join(dir, 'vindr-jll.dcm');
  if (spawnSync('dcmcjpeg', ['+e1', native, jll]).status === 0) out['vindr DICOM JPEG Lossless'] = jll;
  const j2k = join(dir, 'vindr-j2k.dcm');
  writeFileSync(
    j2k,
    writeDicom({
      width: W,
      height: H,
      bitsStored: 12,
      photometric: 'MONOCHROME1',
      window: [2048, 4000],
      transferSyntax: '1.2.840.10008.1.2.4.90',
      frame: await encodeJ2k(vd, W, H),
    }),
  );
  out['vindr DICOM JPEG 2000 lossless'] = j2k;
  return out;
}

const PIL = `
import sys, time
from PIL import Image
path, n = sys.argv[1], int(sys.argv[2])
ts = []
for _ in range(n):
    t = time.perf_counter()
    im = Image.open(path)
    im = im.point(lambda v: v * (255 / 4095)) if im.mode.startswith('I') else im
    im = im.convert('L')
    s = 224 / min(im.size)
    im = im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.BICUBIC)
    ts.append(time.perf_counter() - t)
ts.sort()
print(ts[len(ts) // 2])
`;

async function main() {
  const files = await fixtures();
  const pp = resolvePreprocess({ size: 224 });
  // these are dataset files: DICOM is allowed (a caller's image may only be JPEG or PNG)
  const formats = { formats: [...DATASET_FORMATS] };
  const rows: Record<string, unknown>[] = [];
  for (const [name, file] of Object.entries(files)) {
    const buf = readFileSync(file);
    await decodePlane(buf, pp, formats); // warm (codec load)
    const t: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      await decodePlane(buf, pp, formats);
      t.push(performance.now() - t0);
    }
    const ms = median(t);
    let pil: number | null = null;
    if (file.endsWith('.png')) {
      const r = spawnSync(pythonExe(arg('python', '')), ['-c', PIL, file, String(N)], { encoding: 'utf8' });
      if (r.status === 0) pil = Number(r.stdout.trim()) * 1000;
    }
    rows.push({
      form: name,
      bytes: buf.length,
      msPerImage: Number(ms.toFixed(1)),
      imagesPerSecond: Number((1000 / ms).toFixed(1)),
      pilMsPerImage: pil === null ? null : Number(pil.toFixed(1)),
      speedupVsPil: pil === null ? null : Number((pil / ms).toFixed(2)),
    });
  }
  process.stdout.write(`${JSON.stringify({ n: N, rows }, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
