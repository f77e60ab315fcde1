/**
 * trainWithCheckpoints over a 2-rank group (head-only classifier, synthetic features): rank 0 writes
 * the checkpoints, a resumed group run equals an uninterrupted one exactly, and the group matches one
 * process at twice the per-rank batch.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TrainState } from '../../ts/experiment/train.js';
import { type Rank, spawnRanks, spawnTs } from './helpers.js';

const WORKER = 'test/distributed/fixtures/train-worker.ts';
const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-dpresume-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

type Out = { st: TrainState; probe: number[] };
async function finish(ranks: Rank[]): Promise<Out[]> {
  const out: Out[] = [];
  for (const r of ranks) {
    const e = await r.exited;
    assert.is(e.code, 0, r.stderr());
    out.push(JSON.parse(r.stdout().trim().split('\n').pop()!) as Out);
  }
  return out;
}
const group = async (dir: string, env: Record<string, string> = {}) =>
  finish(await spawnRanks(WORKER, 2, { DIR: dir, EPOCHS: '3', BATCH: '4', ...env }));

test('a resumed group run equals an uninterrupted one; the group equals one process at 2b', async () => {
  const [straight, interrupted, single] = ['straight', 'interrupted', 'single'].map((d) => join(tmp, d));
  const [a0, a1] = await group(straight!);
  const stopped = await spawnRanks(WORKER, 2, {
    DIR: interrupted!,
    EPOCHS: '3',
    BATCH: '4',
    STOP_AFTER: '1',
  });
  for (const r of stopped) {
    assert.is((await r.exited).code, 0, r.stderr());
    assert.match(r.stdout(), /INTERRUPTED/);
  }
  const [b0] = await group(interrupted!); // resumes from epoch 1's checkpoint on both ranks
  const [s] = await finish([spawnTs(WORKER, [], { DIR: single!, EPOCHS: '3', BATCH: '8', WORLD_SIZE: '' })]);
  const strip = (st: TrainState) =>
    st.history.map((h) => ({ epoch: h.epoch, trainLoss: h.trainLoss, val: h.val }));
  // both ranks end with the same history and weights; only rank 0 wrote checkpoints
  assert.equal(strip(a1!.st), strip(a0!.st));
  assert.equal(a1!.probe, a0!.probe);
  assert.ok(a0!.st.history.every((h) => h.checkpoint!.bytes > 0));
  assert.ok(a1!.st.history.every((h) => h.checkpoint!.bytes === 0));
  // resume: the same history and, loading the same best.ckpt, the same predictions
  assert.equal(strip(b0!.st), strip(a0!.st));
  assert.is(b0!.st.bestEpoch, a0!.st.bestEpoch);
  assert.equal(b0!.probe, a0!.probe);
  const onDisk = JSON.parse(readFileSync(join(straight!, 'state.json'), 'utf8')) as TrainState;
  assert.equal(strip(onDisk), strip(a0!.st));
  // one process at batch 8 = 2 ranks at 4 (float32 summation order aside)
  for (const [k, h] of s!.st.history.entries()) {
    assert.ok(Math.abs(a0!.st.history[k]!.trainLoss - h.trainLoss) <= 1e-5, `epoch ${k + 1} train loss`);
    assert.ok(Math.abs(a0!.st.history[k]!.val.loss - h.val.loss) <= 1e-5, `epoch ${k + 1} val loss`);
  }
  for (const [i, p] of s!.probe.entries()) assert.ok(Math.abs(a0!.probe[i]! - p) <= 1e-5, `probe ${i}`);
});

test.run();
