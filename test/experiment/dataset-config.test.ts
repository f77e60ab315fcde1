/**
 * `data.dataset` in run configs: the run's data step indexes through that dataset's adapter and joins
 * on its CheXmask id column. An existing cache indexed with other row filters (views, requirePositive,
 * dataset) than the config's is refused, naming the field.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { parseConfig } from '../../ts/experiment/config.js';

const MODEL = 'models/tiny';

test('data.dataset: defaults to mimic, takes the five names, refuses others naming the field', () => {
  assert.is(parseConfig({ data: { cache: 'c' } }).data.dataset, 'mimic');
  assert.is(parseConfig({ data: { cache: 'c', dataset: 'nih14' } }).data.dataset, 'nih14');
  assert.throws(() => parseConfig({ data: { cache: 'c', dataset: 'nih' } }), /data\.dataset/);
});

if (existsSync(join(MODEL, 'model.json'))) {
  test('a run config without data.dataset still indexes MIMIC through its adapter', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-dsconfig-mimic-'));
    const { synthesize } = await import('../../ts/synth/synthesize.js');
    const s = await synthesize({ out: join(tmp, 'data'), n: 40, seed: 2, width: 96, height: 96 });
    const { prepareData } = await import('../../ts/experiment/backend-real.js');
    const config = parseConfig({
      data: { cache: join(tmp, 'cache'), root: s.mimicRoot, chexmask: s.chexmaskCsv },
      model: { dir: MODEL, device: 'cpu' },
    });
    const out = (await prepareData(config, { log: () => {} })) as {
      index: { dataset?: string; kept: number };
      cache: { cached: number; chexmask: { idColumn: string } };
    };
    assert.is(out.index.dataset, undefined);
    assert.is(out.index.kept, s.images.filter((im) => im.view === 'PA' || im.view === 'AP').length);
    assert.is(out.cache.chexmask.idColumn, 'dicom_id');
    assert.is(out.cache.cached, s.chexmaskRows - s.lowRcaRows);
  });

  test('a run config with data.dataset nih14 indexes and caches an NIH-layout root', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-dsconfig-'));
    const { synthesize } = await import('../../ts/synth/synthesize.js');
    const s = await synthesize({
      out: join(tmp, 'data'),
      dataset: 'nih14',
      n: 60,
      seed: 2,
      width: 96,
      height: 96,
    });
    const { prepareData } = await import('../../ts/experiment/backend-real.js');
    const config = parseConfig({
      data: { dataset: 'nih14', cache: join(tmp, 'cache'), root: s.mimicRoot, chexmask: s.chexmaskCsv },
      model: { dir: MODEL, device: 'cpu' },
    });
    const out = (await prepareData(config, { log: () => {} })) as {
      index: { dataset: string; kept: number };
      cache: { cached: number; chexmask: { idColumn: string } };
    };
    assert.is(out.index.dataset, 'nih14');
    assert.is(out.index.kept, s.n);
    assert.is(out.cache.chexmask.idColumn, 'Image Index');
    assert.is(out.cache.cached, s.chexmaskRows - s.lowRcaRows);
  });

  test('an existing cache indexed with other row filters is refused naming the field; one that does not record them only at the defaults', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-dsconfig-rows-'));
    const { synthesize } = await import('../../ts/synth/synthesize.js');
    const s = await synthesize({ out: join(tmp, 'data'), n: 40, seed: 2, width: 96, height: 96 });
    const { prepareData } = await import('../../ts/experiment/backend-real.js');
    const data = { cache: join(tmp, 'cache'), root: s.mimicRoot, chexmask: s.chexmaskCsv };
    const prepare = (more: object = {}) =>
      prepareData(parseConfig({ data: { ...data, ...more }, model: { dir: MODEL, device: 'cpu' } }), {
        log: () => {},
      }) as Promise<{ cache: { dir: string } }>;
    const dir = (await prepare()).cache.dir;
    const metaPath = join(dir, 'cache.json');
    const meta = JSON.parse(readFileSync(metaPath, 'utf8'));
    assert.equal(meta.build.rows, { dataset: 'mimic', views: ['PA', 'AP'], requirePositive: false });
    const refused = async (more: object, ...patterns: RegExp[]) => {
      try {
        await prepare(more);
      } catch (e) {
        assert.instance(e, ConfigError);
        assert.ok((e as Error).message.includes(`the image cache ${dir} `), (e as Error).message);
        for (const re of patterns) assert.match((e as Error).message, re);
        return;
      }
      assert.unreachable(`a cache built with the defaults was used for ${JSON.stringify(more)}`);
    };
    await refused({ requirePositive: true }, /data\.requirePositive false \(cache\) vs true \(config\)/);
    await refused({ views: ['AP'] }, /data\.views \["PA","AP"\] \(cache\) vs \["AP"\] \(config\)/);
    await refused({ dataset: 'nih14' }, /data\.dataset "mimic" \(cache\) vs "nih14" \(config\)/);
    // a test dataset's cache is held to the run's filters the same way
    const { prepareTestData } = await import('../../ts/experiment/backend-real.js');
    const run = parseConfig({ data: { ...data, views: ['AP'] }, model: { dir: MODEL, device: 'cpu' } });
    const spec = {
      name: 'site2',
      dataset: 'mimic' as const,
      root: s.mimicRoot,
      chexmask: s.chexmaskCsv,
      cache: data.cache,
    };
    try {
      await prepareTestData(run, spec, { log: () => {} });
      assert.unreachable('a test cache indexed with other views was used');
    } catch (e) {
      assert.instance(e, ConfigError);
      assert.match((e as Error).message, /data\.views \["PA","AP"\] \(cache\) vs \["AP"\] \(config\)/);
    }
    // the same views in another order are the same filter; nothing was rebuilt meanwhile
    assert.is((await prepare({ views: ['AP', 'PA'] })).cache.dir, dir);
    assert.equal(JSON.parse(readFileSync(metaPath, 'utf8')), meta);

    // a cache from before the filters were recorded: the defaults are taken, anything else refused
    const { rows: _rows, ...older } = meta.build;
    writeFileSync(metaPath, JSON.stringify({ ...meta, build: older }));
    assert.is((await prepare()).cache.dir, dir);
    await refused(
      { requirePositive: true },
      /data\.requirePositive not recorded \(cache\) vs true \(config\)/,
      /does not record its index filters/,
    );
    await refused({ views: ['PA'] }, /data\.views not recorded \(cache\) vs \["PA"\] \(config\)/);
    // its dataset is known from its entries
    await refused({ dataset: 'nih14' }, /data\.dataset "mimic" \(cache\) vs "nih14" \(config\)/);
  });
} else test(`SKIP ${MODEL} not exported (run scripts/setup.sh)`, () => {});

test.run();
