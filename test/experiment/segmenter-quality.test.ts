/**
 * A run's segmenter quality (results.json `segmenter`): Dice and HD95 per structure of the predicted
 * planes against the cache's CheXmask regions on the test rows, rows without anatomy left out, the
 * weights' sha256 and train.json's training facts; and the paragraph the reports print.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InterruptedError } from '../../ts/common/errors.js';
import type { CacheLike } from '../../ts/experiment/backend.js';
import type { PredictedMasks } from '../../ts/experiment/predicted-masks.js';
import { segmenterQuality } from '../../ts/experiment/segmenter-quality.js';
import { FILL_SHIFT } from '../../ts/masks/overlay.js';
import { segmenterQualityMarkdown } from '../../ts/report/segmenter.js';

const S = 8;
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-segq-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** Region bits of a square: right lung (1) in the left half's rows 2..5, heart (4) at (5..6, 5..6). */
function regions(shift: number): Uint8Array {
  const m = new Uint8Array(S * S);
  for (let y = 2; y < 6; y++) for (let x = 1; x < 4; x++) m[y * S + x + shift] = 1;
  for (let y = 5; y < 7; y++) for (let x = 5; x < 7; x++) m[y * S + x] |= 4;
  return m;
}

test('Dice/HD95 of the predicted planes vs CheXmask on the test rows, weights hash, training facts', async () => {
  // rows 0 and 1 are test rows with anatomy, row 2 a test row without (skipped), row 3 not a test row
  const ref = [regions(0), regions(0), new Uint8Array(S * S), regions(0)];
  const cache = {
    entries: [],
    indicesOf: () => [],
    batch: () => {
      throw new Error('unused');
    },
    regionMasks: (idx: number[]) => ref[idx[0]!]!,
  } as unknown as CacheLike;
  const predicted = [regions(0), regions(1), regions(0)]; // row 0 exact, row 1 lung shifted by 1 px
  const planes = new Uint8Array(3 * S * S);
  predicted.forEach((m, j) => {
    for (let p = 0; p < S * S; p++) planes[j * S * S + p] = (m[p]! << FILL_SHIFT) | 0b001;
  });
  const pm = {
    size: S,
    rows: [0, 1, 2],
    planes,
    slot: new Map([
      [0, 0],
      [1, 1],
      [2, 2],
    ]),
  } as unknown as PredictedMasks;
  const weights = join(tmp, 'best.pt');
  writeFileSync(weights, 'weights bytes');
  writeFileSync(
    join(tmp, 'train.json'),
    JSON.stringify({
      fingerprint: { cache: 'abc123', maxTrainImages: 600 },
      epoch: 2,
      best: { epoch: 2, valDice: 0.91 },
    }),
  );
  const q = await segmenterQuality({ dir: 'models/seg-tiny', weights }, cache, pm, [0, 1, 2]);
  assert.is(q.images, 2, 'the row without anatomy is not scored');
  // lung: 12 px squares; shifted by one column they share 8 → Dice 16/24; mean over the 2 rows
  assert.ok(Math.abs(q.dice.rightLung.mean - (1 + 16 / 24) / 2) < 1e-12, String(q.dice.rightLung.mean));
  assert.is(q.dice.heart.mean, 1);
  assert.is(q.dice.leftLung.mean, 1, 'absent from both: 1');
  assert.is(q.hd95.heart.median, 0);
  assert.is(q.weightsSha256, createHash('sha256').update('weights bytes').digest('hex').slice(0, 16));
  assert.equal(q.training, {
    fingerprint: { cache: 'abc123', maxTrainImages: 600 },
    epochs: 2,
    bestEpoch: 2,
    bestValDice: 0.91,
  });
  const md = segmenterQualityMarkdown(q);
  assert.match(md, /sha256 [0-9a-f]{16}/);
  assert.match(
    md,
    /trained 2 epoch\(s\) on cache abc123 \(at most 600 training images\), best validation Dice 0\.910/,
  );
  assert.match(md, /right lung 0\.833 \(HD95 /);
  assert.match(md, /on 2 test images/);
});

test('scoring answers a stop between images: InterruptedError, not minutes of HD95 first', async () => {
  // one model-grid image with lung-sized structures, scored 600 times (~7 s if nothing stopped it)
  const s = 224;
  const m = new Uint8Array(s * s);
  for (let y = 40; y < 190; y++)
    for (let x = 20; x < 200; x++)
      m[y * s + x] = (x < 100 ? 1 : x > 120 ? 2 : 0) | (y > 120 && x > 80 && x < 150 ? 4 : 0);
  const cache = { entries: [], indicesOf: () => [], regionMasks: () => m } as unknown as CacheLike;
  const planes = m.map((v) => v << FILL_SHIFT);
  const pm = { size: s, rows: [0], planes, slot: new Map([[0, 0]]) } as unknown as PredictedMasks;
  const signal = { stop: false };
  setTimeout(() => (signal.stop = true), 100);
  const rows = new Array<number>(600).fill(0);
  const got = await segmenterQuality(
    { dir: tmp, weights: join(tmp, 'best.pt') },
    cache,
    pm,
    rows,
    signal,
  ).then(
    (q) => q,
    (e: unknown) => e,
  );
  assert.instance(got, InterruptedError);
  assert.match(String(got), /segmenter/);
});

test.run();
