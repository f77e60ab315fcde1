/**
 * Resume and re-evaluation against changed data are refused, and a resumed run's
 * results.json keeps data.cache (item 9). Pure-JS fake backend: no native addon.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import type { Backend, CacheLike } from '../../ts/experiment/backend.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { dataFingerprint, fingerprintChanges } from '../../ts/experiment/fingerprint.js';
import type { Results } from '../../ts/experiment/results.js';
import { resolvePreprocess } from '../../ts/images/preprocess.js';
import { reevaluate } from '../../ts/report/reevaluate.js';
import { runSettings } from '../../ts/service/model-source.js';
import { fakeBackend, fakeCache } from './fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-resume-data-'));
const config = parseConfig({
  runsDir: join(tmp, 'runs'),
  name: 'data',
  data: { cache: 'unused' },
  seeds: [0],
  zeroshot: { enabled: false },
  finetune: { enabled: false },
  linearProbe: { epochs: 2, batchSize: 16, lr: 0.05 },
  metrics: { bootstrap: 20 },
});

const JOIN = {
  minDice: 0.7,
  labelPolicy: { uncertain: 'ignore', blank: 'zeros' },
  requireMask: true,
  chexmask: null,
};

/** The fake backend over another cache (what `cxrmask cache --min-dice 0.9` into the same folder gives). */
function withCache(cache: CacheLike): Backend {
  return { ...fakeBackend(), openCache: () => cache };
}
const CONTOUR = { thickness: 3, source: 'rle' as const };
const PREPROCESS = resolvePreprocess({ preset: 'paper' });
const keyed = (c: CacheLike, over: Partial<CacheLike> = {}): CacheLike =>
  Object.assign(c, {
    key: 'k1',
    dir: join(tmp, 'no-such-cache'),
    digest: 'd1',
    build: JOIN,
    contour: CONTOUR,
    preprocess: PREPROCESS,
    decoder: 2,
    ...over,
  });

let runDir = '';
let first: Results;

test('a run records its data fingerprint in data.json and results.json', async () => {
  const r = await runExperiment({ config, backend: withCache(keyed(fakeCache())) });
  runDir = r.runDir;
  first = r.results;
  const recorded = JSON.parse(readFileSync(join(runDir, 'data.json'), 'utf8'));
  assert.is(recorded.fingerprint.cacheKey, 'k1');
  assert.is(recorded.fingerprint.entries, 120);
  assert.equal(recorded.fingerprint.join, JOIN);
  assert.equal(first.data.fingerprint, recorded.fingerprint);
  assert.ok(first.data['cache'], 'data.cache in results.json');
  // the contour settings stay with the run: its cache folder here never existed
  assert.equal(recorded.summaries.cache.contour, CONTOUR);
  assert.equal(runSettings(runDir).overlay, CONTOUR);
  // and the preprocessing its images were made with (a paper-preset cache here)
  assert.equal(recorded.summaries.cache.preprocess, PREPROCESS);
  assert.equal(runSettings(runDir), { overlay: CONTOUR, preprocess: PREPROCESS });
  // and the decoder revision that decoded them
  assert.is(recorded.summaries.cache.decoder, 2);
  assert.is((first.data['cache'] as { decoder: number }).decoder, 2);
});

test("a run started as the CLI starts it (the data step's cache summary, a relative cache folder) records its contours and the cache folder absolute", async () => {
  const home = process.cwd();
  process.chdir(tmp);
  try {
    const cache = keyed(fakeCache(), { dir: 'caches/k1' });
    // what prepareData returns for an existing cache: no contour settings in it
    const extra = { cache: { dir: 'caches/k1', entries: 120, skipped: null } };
    const r = await runExperiment({ config, backend: withCache(cache), extra });
    const recorded = JSON.parse(readFileSync(join(r.runDir, 'data.json'), 'utf8'));
    assert.is(recorded.fingerprint.cacheDir, join(tmp, 'caches', 'k1'));
    assert.equal(recorded.summaries.cache.contour, CONTOUR);
    assert.equal(recorded.summaries.cache.preprocess, PREPROCESS);
    assert.is(recorded.summaries.cache.entries, 120);
    assert.is(recorded.summaries.cache.dir, join(tmp, 'caches', 'k1'), 'data.json summaries: absolute');
    assert.is((r.results.data['cache'] as { dir: string }).dir, join(tmp, 'caches', 'k1'), 'results.json');
    process.chdir(home);
    assert.equal(runSettings(r.runDir).overlay, CONTOUR);
    // a run from before either was recorded absolute: the warning says where the relative folder was sought
    const data = join(r.runDir, 'data.json');
    const old = JSON.parse(readFileSync(data, 'utf8'));
    old.fingerprint.cacheDir = 'caches/gone';
    delete old.summaries.cache;
    writeFileSync(data, JSON.stringify(old));
    const warned: string[] = [];
    const emit = process.emitWarning;
    process.emitWarning = ((w: string) => warned.push(w)) as typeof process.emitWarning;
    try {
      assert.is(runSettings(r.runDir).overlay, undefined);
    } finally {
      process.emitWarning = emit;
    }
    assert.is(warned.length, 2, 'contours and preprocessing');
    for (const w of warned)
      assert.ok(
        w.includes(
          `(caches/gone, recorded relative to the folder the run was started from; looked for from ${home})`,
        ),
        w,
      );
  } finally {
    process.chdir(home);
  }
});

test('resume after a rebuild with fewer images is refused, naming what changed; nothing is recomputed', async () => {
  const cell = join(runDir, 'cells', 'lp-masked-s0', 'result.json');
  rmSync(cell);
  const smaller = keyed(fakeCache({ n: 100 }), { digest: 'd2', build: { ...JOIN, minDice: 0.9 } });
  try {
    await runExperiment({ config, backend: withCache(smaller), resume: runDir });
    assert.unreachable('resume against other data must fail');
  } catch (e) {
    const m = (e as Error).message;
    assert.is((e as Error).name, 'DataError');
    assert.match(m, /cannot resume/);
    assert.match(m, /data\.json/);
    assert.match(m, /cached images 120 → 100/);
    assert.match(m, /join setting minDice: 0\.7 → 0\.9/);
    assert.match(m, /cache content differs/);
  }
  assert.not.ok(existsSync(cell), 'the deleted cell was not recomputed on the new data');
});

test('same ids, other labels (another label policy) are refused too', async () => {
  const relabelled = keyed(fakeCache());
  relabelled.entries[3] = { ...relabelled.entries[3]!, labelMask: [0, 0, 0, 0, 0] };
  try {
    await runExperiment({ config, backend: withCache(relabelled), resume: runDir });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /ids, splits or labels differ/);
  }
  try {
    await reevaluate(runDir, withCache(relabelled));
    assert.unreachable('eval against other labels must fail');
  } catch (e) {
    assert.match((e as Error).message, /cannot re-evaluate/);
  }
});

test('resume on the same data finishes the run; results.json keeps data.cache and the fingerprint', async () => {
  const r = await runExperiment({ config, backend: withCache(keyed(fakeCache())), resume: runDir });
  assert.ok(r.results.run.resumed);
  assert.ok(existsSync(join(runDir, 'cells', 'lp-masked-s0', 'result.json')));
  const onDisk = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as Results;
  assert.equal(onDisk.data['cache'], first.data['cache']);
  assert.equal(onDisk.data.fingerprint, first.data.fingerprint);
});

test('a cache recording its index row filters resumes a run recorded before caches did; other filters are refused', async () => {
  // the run's data.json has no join.rows: the same data with the filters recorded is the same data
  const rows = { dataset: 'mimic', views: ['PA', 'AP'], requirePositive: false };
  const recorded = keyed(fakeCache(), { build: { ...JOIN, rows } });
  const r = await runExperiment({ config, backend: withCache(recorded), resume: runDir });
  assert.equal(r.results.data.fingerprint.join, { ...JOIN, rows });
  const data = JSON.parse(readFileSync(join(runDir, 'data.json'), 'utf8'));
  assert.equal(data.fingerprint.join, JOIN, 'data.json keeps what the run started with');
  // a run that recorded them compares them
  const { runDir: dir } = await runExperiment({
    config,
    backend: withCache(keyed(fakeCache(), { build: { ...JOIN, rows } })),
  });
  const other = keyed(fakeCache(), { build: { ...JOIN, rows: { ...rows, requirePositive: true } } });
  try {
    await runExperiment({ config, backend: withCache(other), resume: dir });
    assert.unreachable('resume on a cache indexed with other row filters must fail');
  } catch (e) {
    assert.match(
      (e as Error).message,
      /join setting rows: \{.*"requirePositive":false\} → \{.*"requirePositive":true\}/,
    );
  }
});

test('the CheXmask CSV path is not compared: a cache rebuilt by `cxrmask cache` (which now records it) still resumes', () => {
  const before = dataFingerprint(keyed(fakeCache()));
  const now = dataFingerprint(
    keyed(fakeCache(), { build: { ...JOIN, chexmask: '/data/MIMIC-CXR-JPG.csv' } }),
  );
  assert.equal(fingerprintChanges(before, now), []);
  const moved = dataFingerprint(keyed(fakeCache(), { build: { ...JOIN, chexmask: '/elsewhere/x.csv' } }));
  assert.equal(fingerprintChanges(now, moved), []);
  // the settings next to it still are
  const other = dataFingerprint(keyed(fakeCache(), { build: { ...JOIN, requireMask: false } }));
  assert.equal(fingerprintChanges(before, other), ['join setting requireMask: true → false']);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
