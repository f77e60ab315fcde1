/**
 * What a run's segmenter quality (`config.segmenter`: Dice and HD95 per structure of every test
 * image, results.json `segmenter`) costs per image on the model grid, against medpy's definition as a
 * Python user computes it (scipy.ndimage: binary_erosion for the borders, distance_transform_edt,
 * numpy.percentile), on the same masks. Masks: lung- and heart-shaped ellipses on the 224 grid, the
 * prediction off by a few pixels; CPU time of one core.
 *
 *   node --import tsx bench/seg-metrics.ts [--images 200]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../ts/common/random.js';
import { scoreMasks } from '../ts/segment/metrics.js';
import { benchPython } from './common.js';

const { values: opt } = parseArgs({ options: { images: { type: 'string', default: '200' } } });
const n = Number(opt.images);
const S = 224;
const HW = S * S;
const r = mulberry32(5);

/** Region bits (right lung 1, left lung 2, heart 4) of one image, its shapes moved by `jitter` px. */
function regions(jitter: number): Uint8Array {
  const m = new Uint8Array(HW);
  const j = () => (r() - 0.5) * 2 * jitter;
  const shapes = [
    { bit: 1, cx: 70 + j(), cy: 105 + j(), rx: 38 + j(), ry: 78 + j() },
    { bit: 2, cx: 154 + j(), cy: 105 + j(), rx: 36 + j(), ry: 76 + j() },
    { bit: 4, cx: 122 + j(), cy: 150 + j(), rx: 34 + j(), ry: 28 + j() },
  ];
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++)
      for (const e of shapes)
        if (((x - e.cx) / e.rx) ** 2 + ((y - e.cy) / e.ry) ** 2 <= 1) m[y * S + x]! |= e.bit;
  return m;
}

const ref = new Uint8Array(n * HW);
const pred = new Uint8Array(n * HW);
for (let i = 0; i < n; i++) {
  const base = regions(6);
  ref.set(base, i * HW);
  pred.set(
    regions(0).map((v, p) => (r() < 0.002 ? base[p]! ^ 1 : v)),
    i * HW,
  ); // a few stray pixels
}

const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
scoreMasks(pred.subarray(0, HW), ref.subarray(0, HW), 1, S); // warm-up
const t0 = cpuMs();
const ours = scoreMasks(pred, ref, n, S);
const oursMs = (cpuMs() - t0) / n;

const PY = `
import sys, time, numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure
n, S, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
a = np.fromfile(path, np.uint8).reshape(2, n, S, S)
cross = generate_binary_structure(2, 1)
def surface(x, y):
    bx = x ^ binary_erosion(x, structure=cross, border_value=0)
    by = y ^ binary_erosion(y, structure=cross, border_value=0)
    return distance_transform_edt(~by)[bx]
t0 = time.process_time()
hd = []
for i in range(n):
    for bit in (1, 2, 4):
        p, r = (a[0, i] & bit) > 0, (a[1, i] & bit) > 0
        2 * (p & r).sum() / (p.sum() + r.sum())
        hd.append(np.percentile(np.hstack((surface(p, r), surface(r, p))), 95))
print((time.process_time() - t0) * 1000 / n, float(np.mean(hd)))
`;
const dir = mkdtempSync(join(tmpdir(), 'cxrmask-segbench-'));
try {
  const file = join(dir, 'masks.u8');
  writeFileSync(file, Buffer.concat([pred, ref]));
  const { python, version } = benchPython('scipy');
  const p = spawnSync(python, ['-c', PY, String(n), String(S), file], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`the scipy run failed: ${p.stderr}`);
  const [scipyMs, scipyMeanHd] = p.stdout.trim().split(' ').map(Number) as [number, number];
  const ourHd = [...ours.hd95.rightLung, ...ours.hd95.leftLung, ...ours.hd95.heart];
  const ourMeanHd = ourHd.reduce((x, y) => x + y, 0) / ourHd.length;
  // the same masks: the same HD95s (medpy's definition both), or the timing compares different work
  if (Math.abs(ourMeanHd - scipyMeanHd) > 1e-9)
    throw new Error(`mean HD95 ${ourMeanHd} here, ${scipyMeanHd} from scipy`);
  process.stdout.write(
    `${JSON.stringify({
      step: 'segmenter quality per test image (Dice + HD95, 3 structures, 224 grid)',
      images: n,
      cpuMsPerImage: +oursMs.toFixed(2),
      scipyCpuMsPerImage: +scipyMs.toFixed(2),
      vsScipy: +(scipyMs / oursMs).toFixed(2),
      scipy: version,
      projectedSeconds: {
        mimicTest3400: +((oursMs * 3400) / 1000).toFixed(0),
        nihTest25596: +((oursMs * 25596) / 1000).toFixed(0),
      },
    })}\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
