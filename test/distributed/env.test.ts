/** Reading a job's layout from the environment (torchrun, Slurm) and the launcher's argv handling. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withoutNproc } from '../../ts/distributed/launch.js';
import { backendFor, distTimeoutMs, rankDevice, readDistEnv } from '../../ts/model/dist-env.js';

test('no WORLD_SIZE and no multi-task Slurm step: a single process', () => {
  assert.is(readDistEnv({}), null);
  assert.is(readDistEnv({ WORLD_SIZE: '1', RANK: '0' }), null);
  assert.is(readDistEnv({ SLURM_NTASKS: '1', SLURM_PROCID: '0' }), null);
});

test('torchrun variables', () => {
  const e = readDistEnv({
    RANK: '3',
    WORLD_SIZE: '8',
    LOCAL_RANK: '1',
    MASTER_ADDR: 'node0',
    MASTER_PORT: '29400',
  });
  assert.equal(e, {
    rank: 3,
    worldSize: 8,
    localRank: 1,
    masterAddr: 'node0',
    masterPort: 29400,
    source: 'torchrun',
  });
  assert.is(rankDevice(e!, true), 'cuda:1');
  assert.is(rankDevice(e!, false), 'cpu');
  assert.is(backendFor('cuda:1'), 'nccl');
  assert.is(backendFor('cpu'), 'gloo');
  // defaults: loopback master, torch's default port
  const d = readDistEnv({ RANK: '0', WORLD_SIZE: '2' })!;
  assert.is(d.masterAddr, '127.0.0.1');
  assert.is(d.masterPort, 29500);
});

test('Slurm variables when WORLD_SIZE is unset', () => {
  const e = readDistEnv({ SLURM_NTASKS: '4', SLURM_PROCID: '2', SLURM_LOCALID: '0', MASTER_ADDR: 'n1' });
  assert.equal(e, {
    rank: 2,
    worldSize: 4,
    localRank: 0,
    masterAddr: 'n1',
    masterPort: 29500,
    source: 'slurm',
  });
  assert.throws(
    () => readDistEnv({ SLURM_NTASKS: '8', SLURM_PROCID: '5', SLURM_NNODES: '2' }),
    /MASTER_ADDR is not set.*scontrol/,
  );
});

test('inconsistent variables are ConfigErrors naming the variable', () => {
  assert.throws(() => readDistEnv({ WORLD_SIZE: '2', RANK: '2' }), /RANK=2 must be below WORLD_SIZE=2/);
  assert.throws(() => readDistEnv({ WORLD_SIZE: 'two', RANK: '0' }), /WORLD_SIZE=two must be an integer/);
  assert.throws(() => readDistEnv({ WORLD_SIZE: '2' }), /RANK is not/);
  assert.throws(() => readDistEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '70000' }), /not a TCP port/);
  assert.is(distTimeoutMs({}), 600_000);
  assert.is(distTimeoutMs({ CXRMASK_DIST_TIMEOUT: '2.5' }), 2500);
  assert.throws(() => distTimeoutMs({ CXRMASK_DIST_TIMEOUT: '0' }), /positive number of seconds/);
});

test('the launcher drops --nproc from the children’s arguments', () => {
  assert.equal(withoutNproc(['main.js', 'run', '--nproc', '4', '--seeds', '0']), [
    'main.js',
    'run',
    '--seeds',
    '0',
  ]);
  assert.equal(withoutNproc(['main.js', 'run', '--nproc=2']), ['main.js', 'run']);
});

test.run();
