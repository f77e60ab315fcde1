/**
 * Enlarging (a source side shorter than the output size) against open_clip's eval transform run on
 * PIL in the project's venv: Pillow's pixel-centre convention and edge handling, byte for byte.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pythonExe } from '../../bench/common.js';
import { pilResize } from '../../ts/images/pil-resample.js';
import { decodePlane, type PreprocessOptions, resolvePreprocess } from '../../ts/images/preprocess.js';
import { FIXTURES, tempDir } from '../data/helpers.js';
import { loopTicksDuring } from './loop-ticks.js';

/** For each job, the uint8 plane PIL gives: open_clip's transform (crop), or torchvision Resize((s, s)) (squash). */
const PIL_PLANES = `
import json, sys
import numpy as np
from PIL import Image
from open_clip.transform import image_transform
from torchvision import transforms as T
MEAN = [0.48145466, 0.4578275, 0.40821073]; STD = [0.26862954, 0.26130258, 0.27577711]
F = {'cubic': T.InterpolationMode.BICUBIC, 'linear': T.InterpolationMode.BILINEAR, 'lanczos3': T.InterpolationMode.LANCZOS}
for j in json.load(sys.stdin):
    im = Image.open(j['in'])
    s = j['size']
    if j['mode'] == 'crop' and j['kernel'] == 'cubic':
        x = image_transform(s, is_train=False, mean=MEAN, std=STD)(im).numpy()[0]
        u = np.rint((x * STD[0] + MEAN[0]) * 255)
    elif j['mode'] == 'crop':
        u = np.asarray(T.Compose([T.Resize(s, interpolation=F[j['kernel']]), T.CenterCrop(s)])(im))
    else:
        u = np.asarray(T.Resize((s, s), interpolation=F[j['kernel']])(im))
    u.astype(np.uint8).tofile(j['out'])
`;

interface Job {
  in: string;
  out: string;
  size: number;
  mode: 'crop' | 'squash';
  kernel: 'cubic' | 'linear' | 'lanczos3';
}

const dir = tempDir('cxrmask-enlarge-');
const phantom = join(FIXTURES, 'phantom-640x768.jpg');
/** The phantom shrunk to w×h and saved as an 8-bit gray PNG: the small source to enlarge. */
async function small(w: number, h: number): Promise<string> {
  const p = join(dir, `phantom-${w}x${h}.png`);
  await sharp(phantom).resize(w, h, { fit: 'fill' }).toColourspace('b-w').png().toFile(p);
  assert.is((await sharp(p).metadata()).channels, 1);
  return p;
}

function pilPlanes(jobs: Job[]): void {
  const r = spawnSync(pythonExe(), ['-c', PIL_PLANES], { input: JSON.stringify(jobs), encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
}

async function maxDiff(job: Job): Promise<number> {
  const pp: PreprocessOptions = {
    size: job.size,
    kernel: job.kernel,
    ...(job.mode === 'squash' ? { resize: 'squash' } : {}),
  };
  const { gray } = await decodePlane(job.in, resolvePreprocess(pp));
  const ref = readFileSync(job.out);
  assert.is(gray.length, ref.length);
  let max = 0;
  for (let i = 0; i < gray.length; i++) max = Math.max(max, Math.abs(gray[i] - ref[i]));
  return max;
}

test('enlarged images match open_clip/PIL: portrait, landscape, an axis left as is, other kernels, squash', async () => {
  const portrait = await small(150, 181); // short side 150 < 224
  const landscape = await small(200, 131);
  const exact = await small(224, 300); // short side already 224: nothing resized, only cropped
  const thin = await small(100, 300); // squash: x enlarged, y shrunk
  const jobs: Job[] = [];
  const add = (src: string, mode: Job['mode'], kernel: Job['kernel'], size = 224) =>
    jobs.push({ in: src, out: join(dir, `ref-${jobs.length}.u8`), size, mode, kernel });
  for (const s of [portrait, landscape, exact]) add(s, 'crop', 'cubic');
  add(portrait, 'crop', 'cubic', 448); // e.g. --size 448 on CheXpert-small
  add(landscape, 'crop', 'linear');
  add(landscape, 'crop', 'lanczos3');
  add(portrait, 'squash', 'cubic');
  add(thin, 'squash', 'cubic');
  pilPlanes(jobs);
  const got = [];
  for (const j of jobs) got.push(await maxDiff(j));
  // Enlarging is Pillow's arithmetic, so exact; the squash of the thin image shrinks y in libvips first,
  // then enlarges x (Pillow does x first): rounding apart, within the paper preset's documented 7/255.
  assert.equal(got.slice(0, 7), [0, 0, 0, 0, 0, 0, 0], `max |diff| per job: ${got}`);
  assert.ok(got[7] <= 2, `thin squash: max ${got[7]}/255`);
});

test('shrinking is untouched: the same bytes as sharp resize + extract', async () => {
  const pp = resolvePreprocess({});
  const { gray } = await decodePlane(phantom, pp);
  const want = await sharp(phantom)
    .grayscale()
    .resize(224, 268, { fit: 'fill', kernel: 'cubic' })
    .extract({ left: 0, top: 22, width: 224, height: 224 })
    .raw()
    .toBuffer();
  assert.ok(Buffer.from(gray).equals(want));
});

test('a large enlargement gives the event loop turns as it goes (≈33 M multiply-adds at 2048²)', async () => {
  const src = new Uint8Array(1500 * 1810).map((_, i) => (i * 7) & 255);
  const win = { outW: 2048, outH: 2471, left: 0, top: 212, width: 2048, height: 2048 };
  const { result, ticks } = await loopTicksDuring(() => pilResize(src, 1500, 1810, win, 'cubic'));
  assert.is(result.length, 2048 * 2048);
  assert.ok(ticks >= 16, `${ticks} event-loop turns`);
});

test.run();
