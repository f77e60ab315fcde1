/**
 * The data helpers of the package root (`import … from 'cxrmask'`), as a service or a script uses
 * them: CheXmask rows by join and by index, the preprocessed tensors, the image limits, the labels, the
 * config, the data-parallel layout. Imports only the root; the synthetic data set is the fixture.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ChexmaskIndex,
  ConfigError,
  DataError,
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_PIXELS,
  DEMO,
  demoConfig,
  FINDINGS,
  imagePath,
  joinChexmask,
  loadConfig,
  NUM_LABELS,
  parseConfig,
  preprocess,
  rankBatch,
  readDistEnv,
  stepsPerEpoch,
  VARIANTS,
} from '../../ts/index.js';
import { type SynthSummary, synthesize } from '../../ts/synth/synthesize.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-public-data-'));
let synth: SynthSummary;
/** Frontal images the synthetic CSV has a good row for. */
let withRow: SynthSummary['images'] = [];

test.before(async () => {
  synth = await synthesize({ out: join(tmp, 'data'), n: 12, seed: 5, width: 256, height: 288 });
  withRow = synth.images.filter((im) => im.chexmask === 'ok');
  assert.ok(withRow.length >= 2, 'the fixture has frontal images with CheXmask rows');
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('the five findings, in the order of every [n, 5] array', () => {
  assert.equal([...FINDINGS], ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion']);
  assert.is(NUM_LABELS, 5);
  assert.equal([...VARIANTS], ['original', 'masked']);
});

test('imagePath: the MIMIC-CXR-JPG layout of an image', () => {
  assert.is(imagePath('10000032', '50414267', 'abc'), 'files/p10/p10000032/s50414267/abc.jpg');
  const im = withRow[0]!;
  assert.is(
    join(synth.mimicRoot, imagePath(im.subjectId, im.studyId, im.dicomId)),
    join(synth.mimicRoot, im.path),
  );
});

test('joinChexmask and ChexmaskIndex give the same row of an id', async () => {
  const ids = withRow.map((im) => im.dicomId);
  const { rows, summary } = await joinChexmask(synth.chexmaskCsv, ids);
  assert.is(summary.kept, ids.length);
  assert.is(rows.size, ids.length);
  const index = await ChexmaskIndex.build(synth.chexmaskCsv);
  try {
    assert.is(index.size, synth.chexmaskRows);
    for (const id of ids) {
      assert.ok(index.has(id), id);
      const a = rows.get(id)!;
      const b = await index.row(id);
      assert.is(b.dicomId, id);
      assert.is(a.landmarks.length, 240);
      assert.equal(Array.from(b.landmarks), Array.from(a.landmarks));
      assert.is(b.diceMean, a.diceMean);
    }
    assert.not.ok(index.has('no-such-id'));
    const err = await index.row('no-such-id').catch((e: unknown) => e);
    assert.instance(err, DataError);
    assert.is((err as DataError).reason, 'unknown-id');
    assert.is((err as DataError).where.id, 'no-such-id');
  } finally {
    await index.close();
  }
});

test('preprocess: normalised [3,224,224] tensors; the contours change only the masked one', async () => {
  const im = withRow[0]!;
  const { rows } = await joinChexmask(synth.chexmaskCsv, [im.dicomId]);
  const file = join(synth.mimicRoot, im.path);
  const r = await preprocess(file, rows.get(im.dicomId)!);
  assert.is(r.original.length, 3 * 224 * 224);
  assert.is(r.masked!.length, 3 * 224 * 224);
  assert.is(r.geometry.srcW, im.width);
  assert.is(r.geometry.srcH, im.height);
  let changed = 0;
  for (let i = 0; i < r.original.length; i++) if (r.original[i] !== r.masked![i]) changed++;
  // thin contours: some pixels, far from all
  assert.ok(changed > 500 && changed < r.original.length / 4, `${changed} values changed`);
  const bare = await preprocess(file);
  assert.is(bare.masked, null);
  assert.equal(bare.original, r.original);
});

test('image limits: the defaults, and an image over a cap is a DataError', async () => {
  assert.is(DEFAULT_MAX_FILE_BYTES, 256 * 1024 * 1024);
  assert.is(DEFAULT_MAX_PIXELS, 50_000_000);
  const file = join(synth.mimicRoot, withRow[0]!.path);
  const err = await preprocess(file, null, { limits: { maxPixels: 1000 } }).catch((e: unknown) => e);
  assert.instance(err, DataError);
  assert.match((err as Error).message, /pixels/);
  const notImage = join(tmp, 'not-an-image.jpg');
  writeFileSync(notImage, 'plain text');
  assert.instance(await preprocess(notImage).catch((e: unknown) => e), DataError);
});

test('configs: defaults filled in, every problem a ConfigError naming the field', () => {
  const c = parseConfig({ data: { cache: 'c' } });
  assert.equal(c.seeds, [0, 1, 2]);
  const demo = demoConfig('/data');
  assert.is(demo.data.cache, '/data/cache');
  assert.equal(demo.seeds, [...DEMO.seeds]);
  assert.throws(
    () => parseConfig({ data: { cache: 'c' }, seeds: 'zero' }),
    (e: unknown) => {
      return e instanceof ConfigError && /seeds/.test(e.message);
    },
  );
  const file = join(tmp, 'exp.json');
  writeFileSync(file, JSON.stringify({ data: { cache: 'c' }, seeds: [4] }));
  assert.equal(loadConfig(file).seeds, [4]);
  assert.equal(loadConfig(file, { seeds: [5, 6] }).seeds, [5, 6]);
  writeFileSync(file, '{ not json');
  assert.throws(
    () => loadConfig(file),
    (e: unknown) => e instanceof ConfigError && /not valid JSON/.test(`${e}`),
  );
});

test('data parallel: the launcher environment, and each rank its slice of the global batch', () => {
  assert.is(readDistEnv({}), null);
  assert.is(readDistEnv({ WORLD_SIZE: '1' }), null);
  assert.equal(readDistEnv({ WORLD_SIZE: '4', RANK: '2', LOCAL_RANK: '0', MASTER_PORT: '1234' }), {
    rank: 2,
    worldSize: 4,
    localRank: 0,
    masterAddr: '127.0.0.1',
    masterPort: 1234,
    source: 'torchrun',
  });
  assert.throws(
    () => readDistEnv({ WORLD_SIZE: '2', RANK: '2' }),
    (e: unknown) => e instanceof ConfigError,
  );
  const order = Array.from({ length: 10 }, (_, i) => i);
  assert.is(stepsPerEpoch(10, 2, 2), 3);
  // step 0: global batch 0..3; rank 1 takes 2,3. The short last step (8, 9) splits one each.
  assert.equal(rankBatch(order, 0, 2, 1, 2), [2, 3]);
  assert.equal(rankBatch(order, 2, 2, 0, 2), [8]);
  assert.equal(rankBatch(order, 2, 2, 1, 2), [9]);
});

test.run();
