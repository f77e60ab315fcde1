/**
 * How often a run loads its models (counted on the pure-JS fake backend): the grid predicts each cell
 * with the classifier it trained, a linear probe's image tower is loaded only when images are scored,
 * and a borrowed tower is neither loaded again nor freed.
 */

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { openModel } from '../../ts/model/open.js';
import { countLoads, fakeBackend, fakeCache } from './fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-loads-'));

test('a grid run with zero-shot, LP and JFT cells loads each model once: as many loads as cells, no checkpoint read twice', async () => {
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'loads',
    data: { cache: 'unused' },
    seeds: [0],
    linearProbe: { epochs: 2, batchSize: 16, lr: 0.05 },
    finetune: { epochs: 2, batchSize: 16, lrHead: 0.02 },
    metrics: { bootstrap: 0 },
  });
  const { backend, counts } = countLoads(fakeBackend());
  const { results } = await runExperiment({ config, backend });
  assert.is(results.training.length, 4);
  assert.equal(counts, {
    // the features of both variants (one pass), then zero-shot scoring
    loadClip: 2,
    // one classifier per cell (lp/jft × original/masked), trained and then predicting
    createClassifier: 4,
    // trainWithCheckpoints's final load of best.ckpt, once per cell
    load: 4,
    readCheckpointHeader: 0,
    liveClips: 0,
  });
});

async function lpCheckpoint(name: string): Promise<string> {
  const base = fakeBackend();
  const path = join(tmp, name);
  await (await base.createClassifier({ modelDir: null, inputDim: 16, seed: 1 })).save(path);
  return path;
}

test('a cell whose best.ckpt is missing is not scored with the last epoch’s weights', async () => {
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'no-best',
    data: { cache: 'unused' },
    seeds: [0],
    zeroshot: { enabled: false },
    linearProbe: { epochs: 1, batchSize: 16 },
    finetune: { epochs: 1, batchSize: 16 },
    metrics: { bootstrap: 0 },
  });
  // best.ckpt removed after the cell's last epoch (between its save and the predictions)
  const runsDir = join(tmp, 'runs');
  const onEvent = (e: { kind: string; id?: string }) => {
    if (e.kind !== 'cell-epoch') return;
    for (const run of readdirSync(runsDir).filter((d) => d.endsWith('no-best')))
      rmSync(join(runsDir, run, 'cells', e.id!, 'best.ckpt'), { force: true });
  };
  const backend = fakeBackend();
  await runExperiment({ config, backend, onEvent }).then(
    () => assert.unreachable('a cell without best.ckpt was scored'),
    (e: Error & { reason?: string }) => {
      assert.is(e.reason, 'missing-file');
      assert.match(e.message, /has no best\.ckpt to predict with/);
    },
  );
});

test('a linear probe opened to score stored features loads no image tower; predicting images loads it once', async () => {
  const ckpt = await lpCheckpoint('lp.ckpt');
  const { backend, counts } = countLoads(fakeBackend());
  const m = await openModel({ modelDir: 'm', checkpoint: ckpt, kind: 'linear-probe', backend });
  assert.is(m.kind, 'linear-probe');
  const f = Float32Array.from({ length: 2 * 16 }, (_, i) => Math.sin(i));
  const p = await m.predictFeatures!(f, 2);
  assert.is(p.length, 10);
  assert.is(counts.loadClip, 0, 'cross-dataset testing scores features: no tower');
  const x = (fakeCache({ n: 5 }).batch([0, 1], 'original') as { x: Float32Array }).x;
  const a = await m.predict(x, 2);
  const b = await m.predict(x, 2);
  assert.equal(Array.from(a), Array.from(b));
  // the same numbers as the head over the tower's embeddings
  assert.equal(Array.from(a), Array.from(await m.predictFeatures!(await m.embed!(x, 2), 2)));
  assert.is(counts.loadClip, 1, 'loaded on first use, once');
  assert.is(counts.liveClips, 1);
  await m.dispose();
  assert.is(counts.liveClips, 0, 'dispose frees the tower it loaded');
  assert.equal(
    { header: counts.readCheckpointHeader, made: counts.createClassifier, load: counts.load },
    {
      header: 1,
      made: 1,
      load: 1,
    },
  );
});

test('after dispose no tower is loaded; ready() loads it now; a tower narrower than its model.json says is refused', async () => {
  const ckpt = await lpCheckpoint('lp-lifecycle.ckpt');
  const { backend, counts } = countLoads(fakeBackend());
  const x = (fakeCache({ n: 5 }).batch([0, 1], 'original') as { x: Float32Array }).x;
  const m = await openModel({ modelDir: 'm', checkpoint: ckpt, backend });
  await m.dispose();
  await m.embed!(x, 2).then(
    () => assert.unreachable('a disposed model loaded its tower'),
    (e: Error) => assert.match(e.message, /is disposed/),
  );
  assert.is(counts.loadClip, 0, 'nothing loaded after dispose');
  const eager = await openModel({ modelDir: 'm', checkpoint: ckpt, backend });
  await eager.ready!();
  assert.is(counts.loadClip, 1, 'ready() loads the tower at once');
  await eager.dispose();
  assert.is(counts.liveClips, 0);
  // model.json (embedDim) says 16, the tower that arrives gives 8: refused and freed, not sliced wrong
  const lying = {
    ...backend,
    embedDim: () => 16,
    loadClip: async (d: string, dev: string) => {
      const t = await backend.loadClip(d, dev);
      return Object.assign(t, { embedDim: 8 });
    },
  };
  const bad = await openModel({ modelDir: 'm', checkpoint: ckpt, backend: lying });
  await bad.ready!().then(
    () => assert.unreachable('a tower of the wrong width was used'),
    (e: Error) => assert.match(e.message, /is a head over 16 features, but the image tower of m gives 8/),
  );
  await bad.dispose();
  assert.is(counts.liveClips, 0, 'the refused tower is freed');
});

test('a borrowed tower serves zero-shot and linear-probe opens: none loaded, none freed', async () => {
  const ckpt = await lpCheckpoint('lp-borrowed.ckpt');
  const { backend, counts } = countLoads(fakeBackend());
  const clip = await backend.loadClip('m', 'cpu');
  const x = (fakeCache({ n: 5 }).batch([0, 1], 'original') as { x: Float32Array }).x;
  for (const checkpoint of [null, ckpt]) {
    const m = await openModel({ modelDir: 'm', checkpoint, backend, clip });
    assert.is((await m.predict(x, 2)).length, 10);
    await m.dispose();
  }
  assert.is(counts.loadClip, 1, 'the caller’s one tower');
  assert.is(counts.liveClips, 1, 'still the caller’s to free');
  await clip.dispose();
});

test('a head that does not fit the tower is refused before anything is loaded', async () => {
  const path = join(tmp, 'lp-wide.ckpt');
  await (await fakeBackend().createClassifier({ modelDir: null, inputDim: 24 })).save(path);
  const { backend, counts } = countLoads(fakeBackend());
  await openModel({ modelDir: 'm', checkpoint: path, backend }).then(
    () => assert.unreachable(),
    (e: Error) =>
      assert.match(e.message, /lp-wide\.ckpt is a head over 24 features, but the image tower of m gives 16/),
  );
  assert.is(counts.loadClip + counts.createClassifier, 0);
});

test('openModel refuses an unknown option by name, and a wrong device', async () => {
  const backend = fakeBackend();
  await openModel({ modelDir: 'm', checkpont: 'x.ckpt', backend } as never).then(
    () => assert.unreachable(),
    (e: Error) => {
      assert.instance(e, TypeError);
      assert.match(e.message, /unknown openModel option 'checkpont'/);
    },
  );
  await openModel({ modelDir: 'm', device: 'gpu', backend } as never).then(
    () => assert.unreachable(),
    (e: Error) => {
      assert.instance(e, RangeError);
      assert.match(
        e.message,
        /openModel option 'device': device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got gpu/,
      );
    },
  );
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
