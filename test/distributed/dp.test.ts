/**
 * Data-parallel training over c10d with gloo on 127.0.0.1, two processes of the tiny model:
 * replicas stay identical, two ranks at batch b equal one process at batch 2b, and a dead or silent
 * peer ends the other rank with a clear error within the timeout.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProcessGroup } from '../../ts/model/process-group.js';
import { loadNative } from '../../ts/native.js';
import { freePort, spawnRanks, spawnTs } from './helpers.js';

const WORKER = 'test/distributed/fixtures/dp-worker.ts';
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'cxrmask-dp-'));
  dirs.push(d);
  return d;
};
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// A header/ABI mismatch between libgloo-dev's headers and the wheel's gloo shows up here first: the
// addon either lacks the backend, fails to connect, or a 2-rank all-reduce returns wrong values.
test('the addon has the gloo backend; a 2-rank all-reduce and broadcast give exact values', async () => {
  assert.ok(ProcessGroup.backends().gloo, 'built without gloo headers (apt-get install libgloo-dev)');
  const ranks = await spawnRanks('test/distributed/fixtures/allreduce-worker.ts', 2, {});
  for (const r of ranks) {
    const e = await r.exited;
    assert.is(e.code, 0, r.stderr());
    const got = JSON.parse(r.stdout().trim()) as { world: number; sum: number[]; text: string };
    assert.is(got.world, 2);
    assert.equal(got.sum, [3, 2 ** 21 + 1, -1, Math.fround(2e-30)]);
    assert.is(got.text, 'runs/é-0');
  }
});

test('a rank waiting on root-only work longer than the group timeout waits at a barrier with its own timeout', async () => {
  const ranks = await spawnRanks('test/distributed/fixtures/barrier-worker.ts', 2, {});
  for (const r of ranks) {
    const e = await r.exited;
    assert.is(e.code, 0, r.stderr());
  }
  const waited = JSON.parse(ranks[1]!.stdout().trim()) as { rank: number; waitedMs: number };
  assert.is(waited.rank, 1);
  assert.ok(waited.waitedMs > 4_000, `rank 1 waited ${waited.waitedMs} ms (past the 2 s group timeout)`);
});

test('ranks, world size, port and timeout out of range are refused before any cast (TS and the addon itself)', async () => {
  const base = { rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 29500, timeoutMs: 1000 };
  for (const [k, v] of [
    ['worldSize', 2 ** 31],
    ['timeoutMs', 1e300],
    ['masterPort', 70000],
  ] as const) {
    try {
      await ProcessGroup.create({ ...base, [k]: v });
      assert.unreachable(`${k} ${v} was taken`);
    } catch (e) {
      assert.instance(e, RangeError);
      assert.match((e as Error).message, k);
    }
  }
  // a direct addon call: a double outside an int converted with undefined behaviour before
  const native = loadNative().ProcessGroup as unknown as { create(o: object): Promise<unknown> };
  for (const [k, v] of [
    ['worldSize', 2 ** 31],
    ['rank', 5],
    ['masterPort', 1e300],
    ['timeoutMs', Number.NaN],
  ] as const) {
    try {
      await native.create({ ...base, backend: 'gloo', device: 'cpu', [k]: v });
      assert.unreachable(`the addon took ${k} ${v}`);
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_INVALID_ARG', String(e));
      assert.match((e as Error).message, k);
    }
  }
});

test('rendezvous with a missing peer fails with ERR_DIST_TIMEOUT, not a hang', async () => {
  const port = await freePort();
  const t0 = performance.now();
  try {
    await ProcessGroup.create({
      rank: 0,
      worldSize: 2,
      masterAddr: '127.0.0.1',
      masterPort: port,
      timeoutMs: 1500,
    });
    assert.unreachable('created a group without its second rank');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_DIST_TIMEOUT', String(e));
    assert.match(String(e), /rendezvous \(rank 0 of 2, gloo, 127\.0\.0\.1:\d+\)/);
  }
  assert.ok(performance.now() - t0 < 10_000);
});

test('a MASTER_PORT held by a program that never answers: the rank exits with ERR_DIST_TIMEOUT, not a hang', async () => {
  // accepts every connection and says nothing (another service, or a wedged process of a dead job)
  const held: Socket[] = [];
  const listener = createServer((s) => held.push(s));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as AddressInfo).port;
  const rank = spawnTs('ts/cli/main.ts', ['run', '--cache', join(tmp(), 'cache'), '--progress', 'false'], {
    WORLD_SIZE: '2',
    RANK: '1',
    LOCAL_RANK: '1',
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(port),
    CXRMASK_DIST_TIMEOUT: '1',
  });
  // a watchdog for the hang this was, not a timing
  const watchdog = setTimeout(() => rank.child.kill('SIGKILL'), 60_000);
  const end = await rank.exited;
  clearTimeout(watchdog);
  for (const s of held) s.destroy();
  listener.close();
  assert.is(end.code, 1, `${end.signal ?? ''} ${rank.stderr()}`);
  assert.match(
    rank.stderr(),
    /error: ProcessGroup\.create: distributed rendezvous \(rank 1 of 2, gloo, 127\.0\.0\.1:\d+\) failed: timed out after 2000 ms .*MASTER_PORT taken by another program/,
  );
});

test('replicas are identical after every step; 2 ranks at batch 2 equal 1 process at batch 4', async () => {
  const single = tmp();
  const group = tmp();
  const env = { STEPS: '3', ROWS: '9' };
  const one = spawnTs(WORKER, [], { ...env, OUT_DIR: single, BATCH: '4', WORLD_SIZE: '', SLURM_NTASKS: '' });
  const ranks = await spawnRanks(WORKER, 2, { ...env, OUT_DIR: group, BATCH: '2' });
  const ends = await Promise.all([one, ...ranks].map((r) => r.exited));
  for (const [i, e] of ends.entries())
    assert.is(e.code, 0, `process ${i} failed:\n${[one, ...ranks][i]!.stderr()}`);
  // 9 rows in global batches of 4: the last step has one row, so rank 0 takes an idle step.
  assert.match(ranks[0]!.stdout(), /STEP 2 rows=0/);
  assert.match(ranks[1]!.stdout(), /STEP 2 rows=1/);
  // (a) the same weights, byte for byte, on both replicas after every step (rank 1 was created with
  // another seed: the attach broadcast made them equal).
  for (let s = 0; s < 3; s++) {
    const a = readFileSync(join(group, 'r0', `s${s}.ckpt`));
    const b = readFileSync(join(group, 'r1', `s${s}.ckpt`));
    assert.ok(a.equals(b), `replicas differ after step ${s}`);
  }
  // (b) the group's loss and weights match one process on the union batch. The only difference is
  // the order of float32 additions (two partial sums, then the all-reduce), ~1e-7 relative per sum;
  // AdamW steps of lr 1e-3 carry that into the weights at ~1e-7. Measured: max 1.5e-7. 1e-5 leaves
  // margin yet catches a wrong normalisation (e.g. each rank dividing by its own mask count: ~1e-2).
  const ref = JSON.parse(readFileSync(join(single, 'r0.json'), 'utf8')) as {
    losses: number[];
    probe: number[];
  };
  for (const r of [0, 1]) {
    const got = JSON.parse(readFileSync(join(group, `r${r}.json`), 'utf8')) as typeof ref;
    for (let s = 0; s < 3; s++)
      assert.ok(
        Math.abs(got.losses[s]! - ref.losses[s]!) <= 1e-5 * Math.abs(ref.losses[s]!),
        `loss step ${s}`,
      );
    for (let i = 0; i < ref.probe.length; i++)
      assert.ok(
        Math.abs(got.probe[i]! - ref.probe[i]!) <= 1e-5,
        `probe ${i}: ${got.probe[i]} vs ${ref.probe[i]}`,
      );
  }
});

for (const mode of ['die', 'hang'] as const) {
  test(`a ${mode === 'die' ? 'killed' : 'silent'} peer ends the other rank with a clear error within the timeout`, async () => {
    const ranks = await spawnRanks(WORKER, 2, { OUT_DIR: tmp(), BATCH: '2', MODE: mode, TIMEOUT_MS: '5000' });
    try {
      await ranks[1]!.saw(/STOPPED/);
      const t0 = performance.now();
      if (mode === 'die') ranks[1]!.child.kill('SIGKILL');
      const end = await ranks[0]!.exited;
      const seconds = (end.at - t0) / 1000;
      assert.is.not(end.code, 0);
      const err = ranks[0]!.stderr();
      assert.match(err, mode === 'die' ? /ERR_DIST_(PEER|TIMEOUT)/ : /ERR_DIST_TIMEOUT/);
      assert.match(err, /distributed allreduce \(rank 0 of 2, gloo/);
      assert.ok(seconds < 5 + 4, `rank 0 took ${seconds.toFixed(1)} s`);
      if (mode === 'hang') assert.ok(seconds > 3, `timed out early: ${seconds.toFixed(1)} s`);
    } finally {
      for (const r of ranks) r.child.kill('SIGKILL');
    }
  });
}

test.run();
