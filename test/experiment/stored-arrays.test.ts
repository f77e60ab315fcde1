/**
 * Stored arrays read back on resume (features, predicted mask planes and their features), at the sizes
 * of the real data: over 2 GiB, which readFileSync refuses. Sparse files: no disk is used.
 */
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CacheLike } from '../../ts/experiment/backend.js';
import { loadFeatures } from '../../ts/experiment/features.js';
import { ensurePredictedMasks, predictedFeatures } from '../../ts/experiment/predicted-masks.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-stored-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const segmenter = { dir: 'models/seg', weights: 'w', threshold: 0.5 };
const noModel = async (): Promise<never> => {
  throw new Error('a model was loaded: the stored array was not reused');
};
/** A cache that must not be read (the stored planes are reused). */
const noCache = { entries: [] } as unknown as CacheLike;

/** A sparse file of `bytes` with `marks` (byte offset → value) written in. */
function sparse(path: string, bytes: number, marks: [number, number][]): void {
  writeFileSync(path, '');
  truncateSync(path, bytes);
  const fd = openSync(path, 'r+');
  for (const [at, v] of marks) writeSync(fd, Uint8Array.of(v), 0, 1, at);
  closeSync(fd);
}

test('predicted mask planes over 2 GiB are reused on resume, every byte where it was', async () => {
  // 42,800 validate+test rows at 224²: 2,147,532,800 bytes, just over 2 GiB (MIMIC --split patient: 2.44 GB)
  const size = 224;
  const hw = size * size;
  const rows = Array.from({ length: 42_800 }, (_, i) => i * 2);
  const dir = join(tmp, 'pm');
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'planes.json'),
    JSON.stringify({ rows, size, thickness: 2, segmenter, seconds: 1 }),
  );
  const last = rows.length * hw - 1;
  sparse(join(dir, 'planes.u8'), rows.length * hw, [
    [0, 9],
    [2 ** 31 + 3, 17],
    [last, 33],
  ]);
  const pm = await ensurePredictedMasks(noModel, noCache, {
    dir,
    rows,
    size,
    thickness: 2,
    segmenter,
    batchSize: 64,
  });
  assert.is(pm.planes.length, rows.length * hw);
  assert.equal([pm.planes[0], pm.planes[1], pm.planes[2 ** 31 + 3], pm.planes[last]], [9, 0, 17, 33]);
  assert.is(pm.slot.get(rows[rows.length - 1]!), rows.length - 1);
});

test('stored features are read back as written, and one of the wrong size is not used', async () => {
  const dir = join(tmp, 'features');
  mkdirSync(dir);
  const x = Float32Array.from([1.5, -2, Number.NaN, 4, 5, 6]);
  const meta = { variant: 'original', n: 3, dim: 2, failed: [1], seconds: 1 };
  writeFileSync(join(dir, 'original.json'), JSON.stringify(meta));
  writeFileSync(join(dir, 'original.f32'), x);
  const got = loadFeatures(dir, 'original');
  assert.equal(Array.from(got!.x), Array.from(x));
  assert.is(got!.failed[0], 1);
  writeFileSync(join(dir, 'original.f32'), x.subarray(0, 5));
  assert.is(loadFeatures(dir, 'original'), null);
  // the predicted-mask images' features, reused without a model
  const pmDir = join(tmp, 'pred');
  mkdirSync(pmDir);
  writeFileSync(join(pmDir, 'masked-pred.json'), JSON.stringify({ ...meta, variant: 'masked', rows: 2 }));
  writeFileSync(join(pmDir, 'masked-pred.f32'), x);
  const pm = { size: 4, rows: [0, 2], planes: new Uint8Array(32), slot: new Map(), meta: {} as never };
  const f = await predictedFeatures(noModel, noCache, pm, { dir: pmDir, batchSize: 4, bf16: false });
  assert.equal(Array.from(f.x), Array.from(x));
});

test.run();
