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
import { cellConfig } from '../../ts/experiment/cell-config.js';
import { parseConfig } from '../../ts/experiment/config.js';

const MODEL = 'models/tiny';

test('data.dataset: defaults to mimic, takes the five names, refuses others naming the field', () => {
  assert.is(parseConfig({ data: { cache: 'c' } }).data.dataset, 'mimic');
  assert.is(parseConfig({ data: { cache: 'c', dataset: 'nih14' } }).data.dataset, 'nih14');
  assert.throws(() => parseConfig({ data: { cache: 'c', dataset: 'nih' } }), /data\.dataset/);
});

test("data.readerRule: majority by default, any accepted, others refused naming the field; in the cells' settings when not the default", () => {
  assert.is(parseConfig({ data: { cache: 'c' } }).data.readerRule, 'majority');
  const any = parseConfig({ data: { cache: 'c', dataset: 'vindr', readerRule: 'any' } });
  assert.is(any.data.readerRule, 'any');
  assert.throws(
    () => parseConfig({ data: { cache: 'c', readerRule: 'all' } }),
    /data\.readerRule: Invalid option: expected one of "majority"\|"any"/,
  );
  // cells recorded before the key existed (majority) still match; "any" changes vindr's labels
  assert.equal(cellConfig(parseConfig({ data: { cache: 'c' } }), 'zeroshot').data as object, {
    views: ['PA', 'AP'],
    uncertain: 'ignore',
    requirePositive: false,
    minDice: 0.7,
  });
  assert.is((cellConfig(any, 'zeroshot').data as { readerRule?: string }).readerRule, 'any');
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

  test('a run config with data.readerRule any indexes vindr with it (the index summary records it)', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-dsconfig-vindr-'));
    const { synthesize } = await import('../../ts/synth/synthesize.js');
    const s = await synthesize({
      out: join(tmp, 'data'),
      dataset: 'vindr',
      n: 36,
      seed: 9,
      width: 64,
      height: 64,
    });
    const { prepareData } = await import('../../ts/experiment/backend-real.js');
    const positives = async (readerRule: 'any' | 'majority') => {
      const config = parseConfig({
        data: {
          dataset: 'vindr',
          readerRule,
          cache: join(tmp, `cache-${readerRule}`),
          root: s.mimicRoot,
          chexmask: s.chexmaskCsv,
        },
        model: { dir: MODEL, device: 'cpu' },
      });
      const out = (await prepareData(config, { log: () => {} })) as {
        index: { options: { readerRule?: string }; perLabel: Record<string, { positive: number }> };
      };
      assert.is(out.index.options.readerRule, readerRule);
      return Object.values(out.index.perLabel).reduce((a, l) => a + l.positive, 0);
    };
    // "any" adds the synthetic third reader's false marks (test/synth/layouts.test.ts)
    assert.ok((await positives('any')) > (await positives('majority')));
    // the labels depend on the rule: a cache built with one is refused for the other
    try {
      await prepareData(
        parseConfig({
          data: { dataset: 'vindr', readerRule: 'majority', cache: join(tmp, 'cache-any') },
          model: { dir: MODEL, device: 'cpu' },
        }),
        { log: () => {} },
      );
      assert.unreachable('a cache of readerRule any was used for majority');
    } catch (e) {
      assert.instance(e, ConfigError);
      assert.match((e as Error).message, /data\.readerRule "any" \(cache\) vs "majority" \(config\)/);
    }
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

  test('data.blank: a cache built from an index with --blank ignore runs with data.blank "ignore" and is refused otherwise, naming data.blank', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-dsconfig-blank-'));
    const { synthesize } = await import('../../ts/synth/synthesize.js');
    const s = await synthesize({ out: join(tmp, 'data'), n: 40, seed: 2, width: 96, height: 96 });
    const { runCli } = await import('../cli/helpers.js');
    const index = join(tmp, 'index');
    const built = [
      ['index', '--root', s.mimicRoot, '--out', index, '--uncertain', 'ignore', '--blank', 'ignore'],
      [
        'cache',
        '--index',
        index,
        '--root',
        s.mimicRoot,
        '--chexmask',
        s.chexmaskCsv,
        '--out',
        join(tmp, 'cache'),
        '--no-progress',
      ],
    ].map((args) => runCli(args));
    for (const r of built) assert.is(r.code, 0, r.err);
    const keyed = (JSON.parse(built[1]!.out) as { dir: string }).dir;
    const { prepareData } = await import('../../ts/experiment/backend-real.js');
    const prepare = (more: object) =>
      prepareData(parseConfig({ data: { cache: keyed, ...more }, model: { dir: MODEL, device: 'cpu' } }), {
        log: () => {},
      }) as Promise<{ cache: { dir: string; entries: number } }>;
    const opened = await prepare({ blank: 'ignore' });
    assert.is(opened.cache.dir, keyed);
    assert.ok(opened.cache.entries > 0);
    try {
      await prepare({});
      assert.unreachable('a blank=ignore cache was used for blank zeros');
    } catch (e) {
      assert.instance(e, ConfigError);
      const msg = (e as Error).message;
      assert.match(
        msg,
        'label policy uncertain=ignore, blank=ignore (cache) vs uncertain=ignore, blank=zeros (asked)',
      );
      assert.match(msg, /Set data\.uncertain\/data\.blank\/data\.minDice to what it was built with/);
    }
    assert.is(parseConfig({ data: { cache: 'c' } }).data.blank, 'zeros');
    assert.throws(() => parseConfig({ data: { cache: 'c', blank: 'ones' } }), /data\.blank/);
    assert.is(
      (
        cellConfig(parseConfig({ data: { cache: 'c', blank: 'ignore' } }), 'zeroshot').data as {
          blank?: string;
        }
      ).blank,
      'ignore',
    );
  });
} else test(`SKIP ${MODEL} not exported (run scripts/setup.sh)`, () => {});

test.run();
