/**
 * A damaged cache that a run rebuilds (data.root and data.chexmask set) is repaired from its own
 * entries: the same images, labels and splits, its intact shards reused. Indexing data.root again
 * would give the official split to a cache built from `cxrmask index --split patient`.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../ts/common/errors.js';
import { buildDatasetIndex } from '../../ts/data/datasets/registry.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { openCache } from '../../ts/images/cache.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { synthesize } from '../../ts/synth/synthesize.js';

const MODEL = 'models/tiny';

/** dicomId → split of the cache in `dir` (its one keyed folder). */
function splitsOf(dir: string): Map<string, string> {
  const c = openCache(dir);
  try {
    return new Map(c.entries.map((e) => [e.dicomId, e.split]));
  } finally {
    c.close();
  }
}

if (existsSync(join(MODEL, 'model.json'))) {
  test('a damaged --split patient cache is repaired with its own splits, its intact shards reused', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-repair-'));
    const s = await synthesize({ out: join(tmp, 'data'), n: 60, seed: 4, width: 96, height: 96 });
    const labels = { uncertain: 'ignore', blank: 'zeros' } as const;
    const { entries } = await buildDatasetIndex({
      dataset: 'mimic',
      root: s.mimicRoot,
      ...labels,
      split: 'patient',
      splitSeed: 3,
    });
    const { prepareData } = await import('../../ts/experiment/backend-real.js');
    const { preprocessFor } = await import('../../ts/model/backend-real.js');
    const { readModelMeta } = await import('../../ts/model/meta.js');
    const built = await buildCache({
      entries,
      root: s.mimicRoot,
      chexmask: s.chexmaskCsv,
      labelPolicy: labels,
      rows: { dataset: 'mimic', views: ['PA', 'AP'], requirePositive: false },
      out: join(tmp, 'cache'),
      shardSize: 8,
      preprocess: preprocessFor(readModelMeta(MODEL)),
    });
    const before = splitsOf(built.dir);
    const official = new Map(
      (await buildDatasetIndex({ dataset: 'mimic', root: s.mimicRoot, ...labels })).entries.map((e) => [
        e.dicomId,
        e.split,
      ]),
    );
    const moved = [...before].filter(([id, split]) => official.get(id) !== split).length;
    assert.ok(
      moved > 0,
      'the patient split differs from the official one: otherwise this test shows nothing',
    );
    const shards = readdirSync(built.dir)
      .filter((f) => /^shard-\d+\.bin$/.test(f))
      .sort();
    assert.ok(shards.length >= 3, `${shards.length} shards`);
    truncateSync(join(built.dir, shards[1]!), 1000);

    const said: string[] = [];
    const config = parseConfig({
      data: { cache: join(tmp, 'cache'), root: s.mimicRoot, chexmask: s.chexmaskCsv },
      model: { dir: MODEL, device: 'cpu' },
    });
    const out = (await prepareData(config, { log: (l) => said.push(l) })) as {
      index?: unknown;
      cache: { shardsBuilt: number; shardsReused: number; cached: number };
    };
    assert.match(said.join('\n'), /shard is 1000 bytes/);
    assert.match(said.join('\n'), /repairing it from its own entries\.jsonl/);
    assert.not.match(said.join('\n'), /indexing/);
    assert.is(out.index, undefined, 'nothing was indexed');
    assert.equal([out.cache.shardsBuilt, out.cache.shardsReused], [1, shards.length - 1]);
    assert.equal(splitsOf(built.dir), before, 'the same images in the same splits');
    // and what it records of its index stays what the index said
    const meta = JSON.parse(readFileSync(join(built.dir, 'cache.json'), 'utf8'));
    assert.equal(meta.build.rows, { dataset: 'mimic', views: ['PA', 'AP'], requirePositive: false });
    // the keyed folder given directly, damaged again, with another label policy in the config: its
    // labels would be recorded under settings they were not made with
    truncateSync(join(built.dir, shards[0]!), 1000);
    const other = parseConfig({
      data: { cache: built.dir, root: s.mimicRoot, chexmask: s.chexmaskCsv, uncertain: 'zeros' },
      model: { dir: MODEL, device: 'cpu' },
    });
    await prepareData(other, { log: () => {} }).then(
      () => assert.unreachable('repaired under another label policy'),
      (e: Error) => {
        assert.instance(e, ConfigError);
        assert.match(
          e.message,
          /the damaged cache .* was built with other settings than the config's \(labels/,
        );
      },
    );
  });
}

test.run();
