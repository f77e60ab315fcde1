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
import { benchPython, median } from './common.js';
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

/**
 * What a Python user runs for the same file: PIL for PNG; pydicom (pixel_array through its pylibjpeg
 * plugins, the modality LUT, the VOI window, MONOCHROME1 inverted) for DICOM; then 8-bit gray, a
 * bicubic resize of the short side to 224 and the centre crop (torchvision's arithmetic). Prints the median seconds; writes the
 * last plane (224² bytes) to argv[3] so the bench can say how far the two planes are apart.
 */
const PYTHON = `
import sys, time
import numpy as np
from PIL import Image
path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def gray(path):
    if not path.endswith('.dcm'):
        im = Image.open(path)
        if not im.mode.startswith('I'):
            return im
        return Image.fromarray(np.rint(np.asarray(im, np.float32) * (255 / 4095)).astype(np.uint8), 'L')
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
    ds = pydicom.dcmread(path)
    a = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float32)
    slope, icpt = float(getattr(ds, 'RescaleSlope', 1)), float(getattr(ds, 'RescaleIntercept', 0))
    lo, hi = icpt, (2 ** ds.BitsStored - 1) * slope + icpt
    g = (a - lo) / (hi - lo)
    if ds.PhotometricInterpretation == 'MONOCHROME1':
        g = 1 - g
    return Image.fromarray(np.clip(np.rint(g * 255), 0, 255).astype(np.uint8), 'L')

ts = []
for _ in range(n):
    t = time.perf_counter()
    im = gray(path).convert('L')
    w, h = im.size
    # torchvision's Resize and CenterCrop arithmetic (int(), Python's round)
    rw, rh = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
    im = im.resize((rw, rh), Image.BICUBIC)
    left, top = int(round((rw - 224) / 2)), int(round((rh - 224) / 2))
    plane = np.asarray(im.crop((left, top, left + 224, top + 224)))
    ts.append(time.perf_counter() - t)
plane.tofile(out)
ts.sort()
print(ts[len(ts) // 2])
`;

async function main() {
  const given = arg('python', '');
  const python = given || benchPython('pydicom').python;
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
    const ours = (await decodePlane(buf, pp, formats)).gray;
    const planeFile = join(dir, 'python-plane.u8');
    const r = spawnSync(python, ['-c', PYTHON, file, String(N), planeFile], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`the Python baseline failed on ${name}: ${r.stderr}`);
    const py = Number(r.stdout.trim()) * 1000;
    const theirs = readFileSync(planeFile);
    if (theirs.length !== ours.length) throw new Error(`${name}: Python's plane has ${theirs.length} bytes`);
    let diff = 0;
    for (let i = 0; i < ours.length; i++) diff += Math.abs(ours[i]! - theirs[i]!);
    rows.push({
      form: name,
      bytes: buf.length,
      msPerImage: Number(ms.toFixed(1)),
      imagesPerSecond: Number((1000 / ms).toFixed(1)),
      pythonMsPerImage: Number(py.toFixed(1)),
      speedupVsPython: Number((py / ms).toFixed(2)),
      meanAbsDiffVsPython: Number((diff / ours.length).toFixed(2)),
    });
  }
  process.stdout.write(`${JSON.stringify({ n: N, rows }, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
