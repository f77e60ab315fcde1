/**
 * Where this process sits in a data-parallel job, read from the environment the way PyTorch users
 * launch: torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), `cxrmask run --nproc N`
 * (the same variables), or Slurm's srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID) with MASTER_ADDR
 * and MASTER_PORT exported by the batch script.
 */

import { ConfigError } from '../common/errors.js';
/** This process's place in a data-parallel job. */
export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
  /** Which variables it came from. */
  source: 'torchrun' | 'slurm';
}

/** Seconds a collective may wait for a peer before every rank fails (CXRMASK_DIST_TIMEOUT). */
export const DEFAULT_TIMEOUT_S = 600;

function intVar(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError(`environment variable ${name}=${v} must be an integer >= ${min}`);
  return n;
}

/**
 * The job's layout, or null for a single process (no WORLD_SIZE and no Slurm job step of more than
 * one task).
 * @throws {ConfigError} a variable is not an integer, RANK is not below WORLD_SIZE, or a multi-node
 *   Slurm step has no MASTER_ADDR.
 */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  let source: DistEnv['source'] = 'torchrun';
  let worldSize = intVar(env, 'WORLD_SIZE', 1);
  let rank = intVar(env, 'RANK', 0);
  let localRank = intVar(env, 'LOCAL_RANK', 0);
  if (worldSize === undefined) {
    const tasks = intVar(env, 'SLURM_NTASKS', 1);
    if (tasks === undefined || tasks === 1) return null;
    source = 'slurm';
    worldSize = tasks;
    rank = intVar(env, 'SLURM_PROCID', 0);
    localRank = intVar(env, 'SLURM_LOCALID', 0);
  }
  if (worldSize === 1) return null;
  if (rank === undefined) throw new ConfigError(`WORLD_SIZE=${worldSize} is set but RANK is not`);
  if (rank >= worldSize) throw new ConfigError(`RANK=${rank} must be below WORLD_SIZE=${worldSize}`);
  let masterAddr = env['MASTER_ADDR'];
  if (!masterAddr) {
    const nodes = intVar(env, 'SLURM_NNODES', 1) ?? 1;
    if (nodes > 1)
      throw new ConfigError(
        'MASTER_ADDR is not set: export it in the batch script, e.g. ' +
          'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
      );
    masterAddr = '127.0.0.1';
  }
  const masterPort = intVar(env, 'MASTER_PORT', 1) ?? 29500;
  if (masterPort > 65535) throw new ConfigError(`MASTER_PORT=${masterPort} is not a TCP port`);
  return { rank, worldSize, localRank: localRank ?? 0, masterAddr, masterPort, source };
}

/** Longest timeout a variable may set: 30 days (a larger one overflows the native millisecond count). */
export const MAX_TIMEOUT_S = 30 * 86_400;

/** `name` in seconds → ms (default `defaultS`); not a number in (0, 30 days] is a ConfigError. */
function secondsVar(env: NodeJS.ProcessEnv, name: string, defaultS: number): number {
  const s = env[name];
  if (s === undefined || s === '') return defaultS * 1000;
  const n = Number(s);
  // at least a millisecond: 0.0004 passed and then rounded to 0, refused later without naming `name`
  if (!Number.isFinite(n) || n < 0.001 || n > MAX_TIMEOUT_S)
    throw new ConfigError(
      `${name}=${s} must be a positive number of seconds (at least 0.001), at most ${MAX_TIMEOUT_S}`,
    );
  return Math.round(n * 1000);
}

/** The collective timeout in ms: CXRMASK_DIST_TIMEOUT seconds, default DEFAULT_TIMEOUT_S. */
export function distTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  return secondsVar(env, 'CXRMASK_DIST_TIMEOUT', DEFAULT_TIMEOUT_S);
}

/** Default seconds ranks wait for rank 0's own work (data prep, features, reports): 24 h. */
export const DEFAULT_ROOT_WORK_TIMEOUT_S = 24 * 3600;

/** How long ranks wait for rank 0's own work, in ms: CXRMASK_DIST_ROOT_TIMEOUT seconds (default 24 h). */
export function rootWorkTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  return secondsVar(env, 'CXRMASK_DIST_ROOT_TIMEOUT', DEFAULT_ROOT_WORK_TIMEOUT_S);
}

/** Each rank on its own GPU (cuda:LOCAL_RANK) when the job runs on CUDA, else on the CPU. */
export function rankDevice(dist: DistEnv, cuda: boolean): string {
  return cuda ? `cuda:${dist.localRank}` : 'cpu';
}

/** nccl for CUDA tensors, gloo for CPU tensors (what torchrun users pick). */
export function backendFor(device: string): 'gloo' | 'nccl' {
  return device.startsWith('cuda') ? 'nccl' : 'gloo';
}
