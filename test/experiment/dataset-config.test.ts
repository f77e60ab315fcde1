/** `data.dataset` in run configs: the run's data step indexes through that dataset's adapter and joins on its CheXmask id column. */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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
} else test(`SKIP ${MODEL} not exported (run scripts/setup.sh)`, () => {});

test.run();
