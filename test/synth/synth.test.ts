import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { joinChexmask } from '../../ts/data/chexmask.js';
import { regionPolygon } from '../../ts/data/landmarks.js';
import { decodeRle } from '../../ts/data/rle.js';

import { synthesize } from '../../ts/synth/synthesize.js';
import { synthTree, tempDir } from '../data/helpers.js';

test('deterministic per seed: identical CSVs and JPEG bytes; another seed differs', async () => {
  const a = await synthesize({ out: tempDir(), n: 12, seed: 4, width: 96, height: 112 });
  const b = await synthesize({ out: tempDir(), n: 12, seed: 4, width: 96, height: 112 });
  const c = await synthesize({ out: tempDir(), n: 12, seed: 5, width: 96, height: 112 });
  const w = await synthesize({ out: tempDir(), n: 12, seed: 4, width: 96, height: 112, workers: 2 });
  for (const im of a.images)
    assert.ok(
      readFileSync(join(a.mimicRoot, im.path)).equals(readFileSync(join(w.mimicRoot, im.path))),
      'worker threads change the output',
    );
  assert.ok(
    readFileSync(join(a.out, 'chexmask/MIMIC-CXR-JPG.csv')).equals(
      readFileSync(join(w.out, 'chexmask/MIMIC-CXR-JPG.csv')),
    ),
  );
  for (const f of [
    'mimic/mimic-cxr-2.0.0-metadata.csv.gz',
    'mimic/mimic-cxr-2.0.0-chexpert.csv.gz',
    'mimic/mimic-cxr-2.0.0-split.csv.gz',
    'chexmask/MIMIC-CXR-JPG.csv',
  ]) {
    assert.ok(readFileSync(join(a.out, f)).equals(readFileSync(join(b.out, f))), f);
  }
  for (const im of a.images)
    assert.ok(readFileSync(join(a.mimicRoot, im.path)).equals(readFileSync(join(b.mimicRoot, im.path))));
  assert.not.ok(
    readFileSync(join(a.out, 'chexmask/MIMIC-CXR-JPG.csv')).equals(
      readFileSync(join(c.out, 'chexmask/MIMIC-CXR-JPG.csv')),
    ),
  );
});

test('MIMIC-shaped tree: paths, sizes and CheXmask Height/Width match the JPEGs; RLE = landmark polygons', async () => {
  const s = await synthTree();
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    s.images.map((i) => i.dicomId),
    { minDice: 0, keepRle: true },
  );
  let checked = 0;
  for (const im of s.images.slice(0, 25)) {
    assert.match(
      im.path,
      new RegExp(`^files/p${im.subjectId.slice(0, 2)}/p${im.subjectId}/s${im.studyId}/${im.dicomId}\\.jpg$`),
    );
    const meta = await sharp(join(s.mimicRoot, im.path)).metadata();
    assert.is(meta.width, im.width);
    assert.is(meta.height, im.height);
    // one grey component, as MIMIC-CXR-JPG's files (sRGB would decode slower than the real ones)
    assert.equal([meta.channels, meta.space], [1, 'b-w']);
    const r = rows.get(im.dicomId);
    assert.is(!!r, im.chexmask === 'ok' || im.chexmask === 'low-rca', `${im.view} ${im.chexmask}`);
    if (r) {
      assert.is(r.width, im.width);
      assert.is(r.height, im.height);
      const m = decodeRle(r.rle?.rightLung, r.height, r.width);
      // bounding box of the decoded mask lies within the landmark polygon's box (±1 px)
      const poly = regionPolygon(r.landmarks, 'rightLung');
      let minX = 1e9;
      let maxX = -1e9;
      for (let k = 0; k < poly.length; k += 2) {
        minX = Math.min(minX, poly[k]);
        maxX = Math.max(maxX, poly[k]);
      }
      let mx0 = 1e9;
      let mx1 = -1e9;
      for (let p = 0; p < m.length; p++)
        if (m[p]) {
          mx0 = Math.min(mx0, p % r.width);
          mx1 = Math.max(mx1, p % r.width);
        }
      assert.ok(mx0 >= minX - 1 && mx1 <= maxX + 1 && mx1 - mx0 > (maxX - minX) * 0.9);
      checked++;
    }
  }
  assert.ok(checked > 5);
});

test('NIH-shaped PNGs: one grey component, one in forty RGBA (as a few real ones are)', async () => {
  const s = await synthesize({ out: tempDir(), dataset: 'nih14', n: 80, seed: 4, width: 64, height: 64 });
  const kinds: Record<string, number> = {};
  for (const im of s.images) {
    const m = await sharp(join(s.mimicRoot, im.path)).metadata();
    const k = `${m.format} ${m.channels} ${m.space}`;
    kinds[k] = (kinds[k] ?? 0) + 1;
  }
  assert.equal(Object.keys(kinds).sort(), ['png 1 b-w', 'png 4 srgb']);
  assert.ok(kinds['png 4 srgb']! >= 1 && kinds['png 4 srgb']! <= 4, JSON.stringify(kinds));
});

test('findings change what is drawn: cardiomegaly widens the heart (and its landmarks), effusion/consolidation/edema add lung density', async () => {
  const s = await synthTree();
  const { rows } = await joinChexmask(
    s.chexmaskCsv,
    s.images.map((i) => i.dicomId),
    { minDice: 0.7 },
  );
  const ctr: [number[], number[]] = [[], []];
  const dens: Record<string, [number[], number[]]> = {
    effusion: [[], []],
    consolidation: [[], []],
    edema: [[], []],
  };
  for (const im of s.images) {
    const r = rows.get(im.dicomId);
    if (!r) continue;
    const xs = (reg: 'rightLung' | 'leftLung' | 'heart') => {
      const p = regionPolygon(r.landmarks, reg);
      const v: number[] = [];
      for (let k = 0; k < p.length; k += 2) v.push(p[k]);
      return v;
    };
    const hx = xs('heart');
    const lx = [...xs('rightLung'), ...xs('leftLung')];
    ctr[im.shown[1] ? 1 : 0].push((Math.max(...hx) - Math.min(...hx)) / (Math.max(...lx) - Math.min(...lx)));
    // mean gray inside the lungs' bounding box, lower two thirds
    const { data, info } = await sharp(join(s.mimicRoot, im.path))
      .grayscale()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const ys: number[] = [];
    for (const reg of ['rightLung', 'leftLung'] as const) {
      const p = regionPolygon(r.landmarks, reg);
      for (let k = 1; k < p.length; k += 2) ys.push(p[k]);
    }
    const y0 = Math.min(...ys);
    const y1 = Math.max(...ys);
    let sum = 0;
    let n = 0;
    for (let y = Math.round(y0 + (y1 - y0) / 3); y < y1; y++)
      for (let x = Math.round(Math.min(...lx)); x < Math.max(...lx); x++) {
        sum += data[y * info.width + x];
        n++;
      }
    const mean = sum / n;
    dens.effusion[im.shown[4] ? 1 : 0].push(mean);
    dens.consolidation[im.shown[2] ? 1 : 0].push(mean);
    dens.edema[im.shown[3] ? 1 : 0].push(mean);
  }
  const avg = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  assert.ok(ctr[1].length > 5 && ctr[0].length > 5);
  assert.ok(avg(ctr[1]) > avg(ctr[0]) + 0.08, `CTR ${avg(ctr[1])} vs ${avg(ctr[0])}`);
  for (const [f, [neg, pos]] of Object.entries(dens))
    assert.ok(avg(pos) > avg(neg) + 2, `${f}: ${avg(pos)} vs ${avg(neg)}`);
});

test('the filters have work to do: laterals, blank views, uncertain and blank labels, low-RCA and missing rows', async () => {
  const s = await synthTree();
  assert.ok((s.perView.LATERAL ?? 0) + (s.perView.LL ?? 0) > 10);
  assert.ok(s.lowRcaRows > 0);
  assert.ok(s.images.some((i) => i.labels.includes(-1)));
  assert.ok(s.images.some((i) => i.labels.includes(null)));
  assert.is(s.chexmaskRows, s.images.filter((i) => i.chexmask === 'ok' || i.chexmask === 'low-rca').length);
  assert.ok(s.subjects < s.n && s.studies < s.n);
});

test.run();
