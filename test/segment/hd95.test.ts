/**
 * HD95 is medpy's `hd95` (medpy/metric/binary.py): numpy.percentile(hstack((hd1, hd2)), 95) of the
 * two directed boundary-distance lists pooled, so the segmenter's numbers compare with the literature.
 * The reference below is computed here in numpy, from medpy's definition, on the same masks.
 */

import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pythonExe } from '../../bench/common.js';
import { mulberry32 } from '../../ts/common/random.js';
import { quantile } from '../../ts/common/stats.js';
import { hd95 } from '../../ts/segment/metrics.js';

// medpy: border = mask ^ binary_erosion(mask, cross, border_value=0); distances from one border's
// pixels to the nearest pixel of the other's (Euclidean, pixel centres); both directions pooled.
const MEDPY_HD95 = `
import json, sys, numpy as np
cases = json.load(sys.stdin)
def border(m):
    p = np.pad(m, 1, constant_values=False)
    eroded = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m ^ eroded
def surface(a, b):
    A, B = np.argwhere(border(a)), np.argwhere(border(b))
    return np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)).min(1)
out = []
for c in cases:
    s = c['s']
    P = np.array(c['pred'], bool).reshape(s, s)
    R = np.array(c['ref'], bool).reshape(s, s)
    out.append(float(np.percentile(np.hstack((surface(P, R), surface(R, P))), 95)))
print(json.dumps(out))
`;

interface Case {
  s: number;
  pred: number[];
  ref: number[];
}

function numpyHd95(cases: Case[]): number[] {
  const r = spawnSync(pythonExe(), ['-c', MEDPY_HD95], { input: JSON.stringify(cases), encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as number[];
}

/** A 20×20 square, and the same square plus a 4-pixel-wide spur beside it. */
function squareAndSpur(): { s: number; pred: Uint8Array; ref: Uint8Array } {
  const s = 32;
  const pred = new Uint8Array(s * s);
  const ref = new Uint8Array(s * s);
  for (let y = 4; y < 24; y++)
    for (let x = 4; x < 24; x++) {
      ref[y * s + x] = 1;
      pred[y * s + x] = 1;
    }
  for (let y = 4; y < 30; y++) for (let x = 26; x < 30; x++) pred[y * s + x] = 1;
  return { s, pred, ref };
}

/** A filled ellipse with a random centre and radii (touching the edge at times: edge pixels are border). */
function ellipse(s: number, r: () => number): Uint8Array {
  const m = new Uint8Array(s * s);
  const cx = r() * s;
  const cy = r() * s;
  const rx = 2 + r() * s * 0.4;
  const ry = 2 + r() * s * 0.4;
  for (let y = 0; y < s; y++)
    for (let x = 0; x < s; x++) if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1) m[y * s + x] = 1;
  return m;
}

test('the square with a spur: 6.0, as medpy (the larger directed 95th percentile, 6.497, before)', () => {
  const { s, pred, ref } = squareAndSpur();
  const [want] = numpyHd95([{ s, pred: [...pred], ref: [...ref] }]);
  assert.is(want, 6);
  assert.ok(Math.abs(hd95(pred, ref, s, 1) - want!) < 1e-9, String(hd95(pred, ref, s, 1)));
});

test('random ellipses: equal to numpy from medpy’s definition', () => {
  const r = mulberry32(7);
  const cases: Case[] = [];
  const ours: number[] = [];
  for (let i = 0; i < 40; i++) {
    const s = 24 + Math.floor(r() * 16);
    let pred = ellipse(s, r);
    const ref = ellipse(s, r);
    // a second blob in some predictions: a spur, as a segmenter's false positive
    if (i % 3 === 0) {
      const extra = ellipse(s, r);
      pred = pred.map((v, p) => v | extra[p]!);
    }
    if (!pred.some((v) => v) || !ref.some((v) => v)) continue;
    cases.push({ s, pred: [...pred], ref: [...ref] });
    ours.push(hd95(pred, ref, s, 1));
  }
  const want = numpyHd95(cases);
  assert.ok(cases.length >= 30);
  for (const [i, w] of want.entries())
    assert.ok(Math.abs(ours[i]! - w) < 1e-9, `case ${i}: ${ours[i]} vs ${w}`);
});

/** HD95 from every pair of boundary pixels (exact integer squared distances): no distance transform. */
function bruteHd95(pred: Uint8Array, ref: Uint8Array, s: number, bit: number): number {
  const border = (m: Uint8Array) => {
    const out: [number, number][] = [];
    const on = (x: number, y: number) => x >= 0 && y >= 0 && x < s && y < s && (m[y * s + x]! & bit) !== 0;
    for (let y = 0; y < s; y++)
      for (let x = 0; x < s; x++)
        if (on(x, y) && !(on(x - 1, y) && on(x + 1, y) && on(x, y - 1) && on(x, y + 1))) out.push([x, y]);
    return out;
  };
  const a = border(pred);
  const b = border(ref);
  const nearest = (from: [number, number][], to: [number, number][]) =>
    from.map(([x, y]) => Math.sqrt(Math.min(...to.map(([u, v]) => (x - u) ** 2 + (y - v) ** 2))));
  const ds = [...nearest(a, b), ...nearest(b, a)].sort((x, y) => x - y);
  return quantile(ds, 0.95);
}

test('at the model grid (224), to the bit the pairwise minimum over boundary pixels: far-apart, edge-touching and small structures', () => {
  const r = mulberry32(11);
  const s = 224;
  let checked = 0;
  for (let i = 0; i < 40; i++) {
    // structures as region bits (right lung 1, left lung 2, heart 4): the bit under test among others
    const bit = [1, 2, 4][i % 3]!;
    const blob = (scale: number) => {
      const m = new Uint8Array(s * s);
      const cx = r() * s;
      const cy = r() * s;
      const rx = 1 + r() * s * scale;
      const ry = 1 + r() * s * scale;
      for (let y = 0; y < s; y++)
        for (let x = 0; x < s; x++) if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1) m[y * s + x] = bit;
      return m;
    };
    const scale = i % 4 === 0 ? 0.03 : 0.25; // a few pixels across, or lung-sized
    const other = blob(0.3).map((v) => (v ? 7 & ~bit : 0));
    const pred = blob(scale).map((v, p) => v | other[p]!);
    const ref = blob(scale);
    if (!pred.some((v) => v & bit) || !ref.some((v) => v & bit)) continue;
    checked++;
    assert.is(hd95(pred, ref, s, bit), bruteHd95(pred, ref, s, bit), `case ${i}`);
  }
  assert.ok(checked >= 30, `${checked} cases`);
});

test.run();
