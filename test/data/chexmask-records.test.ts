/**
 * The rle contour source at scale: a join with locateRle holds where each row lies, not its RLE text
 * (≈ 55 KB per row at original resolution, ≈ 13 GB for MIMIC-CXR-JPG), and ChexmaskRecords reads the
 * cells back, the same text a join that keeps them holds.
 */
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../ts/common/errors.js';
import { type ChexmaskRow, type JoinOptions, joinChexmask } from '../../ts/data/chexmask.js';
import { ChexmaskRecords } from '../../ts/data/chexmask-records.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { formatLandmarksFlat, REGIONS } from '../../ts/data/landmarks.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { STAMPS_FILE } from '../../ts/images/cache-verify.js';
import { rejects, synthTree, tempDir } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const H = 3000;
const W = 2500;

/** An original-resolution RLE cell: one run per image row, ≈ 12 characters a run (≈ 36 KB). */
function rleCell(x0: number, len: number): string {
  const runs: string[] = [];
  for (let y = 0; y < H; y++) runs.push(`${y * W + x0 + (y % 7)} ${len}`);
  return runs.join(' ');
}

/** A CheXmask CSV of `n` rows with original-resolution RLE cells (≈ 110 KB a row). */
function longRleCsv(n: number): { path: string; ids: string[] } {
  const dir = tempDir('cxrmask-rle-');
  const path = join(dir, 'chexmask.csv');
  const lm = formatLandmarksFlat(Array.from({ length: 240 }, (_, i) => 100 + ((i * 37) % 2000)));
  const [ll, rl, ht] = [rleCell(1400, 700), rleCell(400, 700), rleCell(1000, 600)];
  writeFileSync(
    path,
    'dicom_id,Dice RCA (Max),Dice RCA (Mean),Landmarks,Left Lung,Right Lung,Heart,Height,Width\n',
  );
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `img-${i}`;
    ids.push(id);
    appendFileSync(path, `${id},0.9,0.85,"${lm}",${ll},${rl},${ht},${H},${W}\n`);
  }
  return { path, ids };
}

/** Heap (and array buffers) still held after a GC while the join's rows are alive. */
async function heldByJoin(path: string, ids: string[], o: JoinOptions): Promise<number> {
  gc();
  const before = process.memoryUsage();
  const { rows } = await joinChexmask(path, ids, o);
  gc();
  const after = process.memoryUsage();
  assert.is(rows.size, ids.length);
  return after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
}

test('a join for the rle source with locateRle holds about what a landmarks join holds, not the RLE text', async () => {
  const { path, ids } = longRleCsv(300); // ≈ 33 MB of RLE text
  // A heap difference also counts what the rest of the process allocates meanwhile (up to ~6 MB seen
  // in the full suite on a loaded machine, in either join): the least of three is the join's own.
  const least = async (o: JoinOptions) => {
    const got: number[] = [];
    for (let i = 0; i < 3; i++) got.push(await heldByJoin(path, ids, o));
    return Math.min(...got);
  };
  const landmarks = await least({ source: 'landmarks' });
  const located = await least({ source: 'rle', locateRle: true });
  const kept = await heldByJoin(path, ids, { source: 'rle' });
  assert.ok(kept > 25e6, `the text a keepRle join holds: ${kept} B`);
  // measured alone: located 0.1-1.1 MB, landmarks 1.1-5.0 MB (one sample each), text 33 MB
  const says = `located rows hold ${located} B, landmarks rows ${landmarks} B (text: ${kept} B)`;
  assert.ok(located < Math.max(landmarks, 0) + 4e6 && located < kept / 8, says);
});

test('ChexmaskRecords reads back the RLE text a keepRle join holds; a changed file is refused naming the file and id', async () => {
  const s = await synthTree();
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const ids = entries.map((e) => e.dicomId);
  const kept = (await joinChexmask(s.chexmaskCsv, ids, { source: 'rle' })).rows;
  const located = (await joinChexmask(s.chexmaskCsv, ids, { source: 'rle', locateRle: true })).rows;
  assert.equal([...located.keys()], [...kept.keys()]);
  const records = await ChexmaskRecords.open(s.chexmaskCsv);
  try {
    for (const [id, r] of located) {
      assert.is(r.rle, undefined, id);
      const full = await records.withRle(r);
      assert.equal(full.rle, kept.get(id)!.rle, id);
      const { record: _r, ...rest } = full;
      assert.equal(rest, kept.get(id), id);
    }
  } finally {
    await records.close();
  }
  // the file rewritten after the join: its rows moved, so the offsets lead elsewhere
  const dir = tempDir();
  const csv = join(dir, 'chexmask.csv');
  const text = readFileSync(s.chexmaskCsv, 'utf8');
  writeFileSync(csv, text);
  const rows = (await joinChexmask(csv, ids, { source: 'rle', locateRle: true })).rows;
  const [header, first, ...rest] = text.split('\n');
  writeFileSync(csv, [header, ...rest.slice(0, -1), first, ''].join('\n'));
  const changed = await ChexmaskRecords.open(csv);
  const row = [...rows.values()][0] as ChexmaskRow;
  const e = await rejects(changed.withRle(row), /changed since its rows were located/);
  await changed.close();
  assert.instance(e, DataError);
  assert.equal((e as DataError).where, { file: csv, id: row.dicomId });
  // a gzipped file has no byte offsets to read rows back from
  const gz = join(dir, 'chexmask.csv.gz');
  writeFileSync(gz, gzipSync(text));
  const g = await rejects(joinChexmask(gz, ids, { source: 'rle', locateRle: true }), /gunzip it once/);
  assert.is((g as DataError).where.file, gz);
});

test('a cache built with the rle source from the CSV path or located rows is byte for byte the one of rows holding their RLE text', async () => {
  const s = await synthTree();
  const { entries } = await buildIndex({ root: s.mimicRoot });
  const ids = entries.map((e) => e.dicomId);
  const base = {
    entries,
    root: s.mimicRoot,
    chexmaskCsv: s.chexmaskCsv,
    overlay: { source: 'rle' as const },
    shardSize: 7,
    concurrency: 2,
  };
  const kept = (await joinChexmask(s.chexmaskCsv, ids, { source: 'rle' })).rows;
  const located = (await joinChexmask(s.chexmaskCsv, ids, { source: 'rle', locateRle: true })).rows;
  const outs = { kept: tempDir(), path: tempDir(), located: tempDir() };
  const a = await buildCache({ ...base, chexmask: kept, out: outs.kept });
  await buildCache({ ...base, chexmask: s.chexmaskCsv, out: outs.path });
  await buildCache({ ...base, chexmask: located, out: outs.located });
  assert.ok(a.cached > 10 && a.cached === kept.size, `${a.cached} images cached`);
  // all but the stamps of when the shards were verified (inode, mtime)
  const files = readdirSync(a.dir)
    .filter((f) => f !== STAMPS_FILE)
    .sort();
  assert.ok(files.filter((f) => f.endsWith('.bin')).length > 1, files.join());
  for (const out of [outs.path, outs.located]) {
    const dir = join(out, a.key);
    assert.equal(
      readdirSync(dir)
        .filter((f) => f !== STAMPS_FILE)
        .sort(),
      files,
    );
    for (const f of files)
      assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(a.dir, f))), `${dir}/${f}`);
  }
  // located rows without the CSV they came from cannot be drawn
  await rejects(
    buildCache({ ...base, chexmaskCsv: undefined, chexmask: located, out: tempDir() }),
    /need chexmaskCsv/,
  );
});

test('the long rle cells of every region are read back whole', async () => {
  const { path, ids } = longRleCsv(3);
  const { rows } = await joinChexmask(path, ids, { source: 'rle', locateRle: true });
  const records = await ChexmaskRecords.open(path);
  const r = await records.withRle(rows.get('img-1')!);
  await records.close();
  for (const region of REGIONS) assert.ok(r.rle![region].length > 30000, region);
});

test('empty, nan, blank-space and quoted rle cells read back as a keepRle join holds them (CRLF file)', async () => {
  const path = join(tempDir('cxrmask-rle-'), 'chexmask.csv');
  const lm = formatLandmarksFlat(Array.from({ length: 240 }, (_, i) => 10 + ((i * 37) % 80)));
  const rows = [
    `a,0.9,0.85,"${lm}",10 5,,nan,100,100`,
    `b,0.9,0.85,"${lm}","20 5",30 5, ,100,100`,
    `c,0.9,0.85,"${lm}",NaN,"",${rleCell(5, 9)},${H},${W}`,
  ];
  writeFileSync(
    path,
    `dicom_id,Dice RCA (Max),Dice RCA (Mean),Landmarks,Left Lung,Right Lung,Heart,Height,Width\r\n${rows.join('\r\n')}\r\n`,
  );
  const ids = ['a', 'b', 'c'];
  const kept = (await joinChexmask(path, ids, { source: 'rle' })).rows;
  const located = (await joinChexmask(path, ids, { source: 'rle', locateRle: true })).rows;
  const records = await ChexmaskRecords.open(path);
  try {
    for (const id of ids) {
      const k = kept.get(id)!;
      const r = await records.withRle(located.get(id)!);
      assert.equal(r.rle, k.rle, id);
      assert.equal(r.emptyMasks, k.emptyMasks, id);
    }
  } finally {
    await records.close();
  }
  // the fixture does hold blanks, and b's quoted cell is read unquoted
  assert.equal(kept.get('a')!.emptyMasks, ['rightLung', 'heart']);
  assert.equal(kept.get('b')!.emptyMasks, ['heart']);
  assert.equal(kept.get('c')!.emptyMasks, ['rightLung', 'leftLung']);
  assert.is(kept.get('b')!.rle!.leftLung, '20 5');
});

test.run();
