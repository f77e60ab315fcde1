/**
 * A torch.distributed process group from TypeScript: rendezvous at MASTER_ADDR:MASTER_PORT (rank 0
 * hosts c10d's TCPStore), collectives over gloo (CPU) or NCCL (CUDA). Every op is async and runs on
 * the device's compute thread, in order with the model's steps. A peer that dies or stops answering
 * makes the pending op reject with a NativeError (code ERR_DIST_PEER or ERR_DIST_TIMEOUT) within the
 * timeout, never a hang.
 */

import { checkArg, intInRange, positiveCount, positiveInt } from '../common/options.js';
import { loadNative, type NativeProcessGroup } from '../native.js';
import { PROCESS_GROUP_DEFAULTS } from './defaults.js';
import {
  backendFor,
  DEFAULT_ROOT_WORK_TIMEOUT_S,
  type DistEnv,
  distTimeoutMs,
  MAX_TIMEOUT_S,
  rootWorkTimeoutMs,
} from './dist-env.js';
import { withJsStack } from './js-stack.js';

/** Options of `ProcessGroup.create`: this rank, the world size and the rendezvous address. */
export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Default: nccl for a CUDA device, gloo for cpu. */
  backend?: 'gloo' | 'nccl';
  /** Default CXRMASK_DIST_TIMEOUT seconds (600). */
  timeoutMs?: number;
  /** Where collective tensors live: 'cpu' (gloo) or 'cuda:N' (nccl). Default 'cpu'. */
  device?: string;
}

/**
 * How long a rank waits at a barrier while rank 0 alone does root-only work (building the image cache,
 * computing features, writing reports): hours at full scale, so not the collective timeout. A dead
 * rank 0 still ends the wait at once (its connection drops). CXRMASK_DIST_ROOT_TIMEOUT (seconds) sets it.
 */
export const ROOT_WORK_TIMEOUT_MS = (() => {
  // a bad value is refused (ConfigError) when a group is joined (run-group.ts), not at import
  try {
    return rootWorkTimeoutMs();
  } catch {
    return DEFAULT_ROOT_WORK_TIMEOUT_S * 1000;
  }
})();

/** What training needs from a group (train.ts); ProcessGroup is one, tests may pass another. */
export interface DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  allReduce(values: Float32Array): Promise<Float32Array>;
  broadcast(values: Float32Array): Promise<Float32Array>;
  /** `timeoutMs` replaces the group timeout for this wait (see ROOT_WORK_TIMEOUT_MS). */
  barrier(timeoutMs?: number): Promise<void>;
}

/** A group a classifier can attach to (Classifier.attachGroup) and training can use. */
export interface GroupLike extends DataParallel {
  readonly nativeGroup: NativeProcessGroup;
}

/**
 * A torch.distributed (c10d) process group over gloo or NCCL: what data-parallel training all-reduces through
 * (docs/distributed.md).
 */
export class ProcessGroup implements GroupLike {
  private constructor(readonly nativeGroup: NativeProcessGroup) {}

  /** Which backends this build of the addon has. */
  static backends(): { gloo: boolean; nccl: boolean } {
    return loadNative().ProcessGroup.backends();
  }

  /**
   * Joins the group; resolves once all `worldSize` ranks have.
   * @throws {RangeError} (synchronously) rank/worldSize/port/timeout out of range.
   * @throws {NativeError} (rejects) the rendezvous times out (ERR_DIST_TIMEOUT), the backend is not
   *   built in (ERR_DIST_UNAVAILABLE), or c10d fails (ERR_DIST).
   */
  static async create(o: ProcessGroupOptions): Promise<ProcessGroup> {
    const worldSize = checkArg(positiveCount, o.worldSize, 'worldSize'); // the addon's int
    if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= worldSize)
      throw new RangeError(`rank must be an integer in [0, ${worldSize}), got ${String(o.rank)}`);
    const port = checkArg(positiveInt, o.masterPort, 'masterPort');
    if (port > 65535) throw new RangeError(`masterPort must be a TCP port, got ${port}`);
    const device = o.device ?? PROCESS_GROUP_DEFAULTS.device;
    const timeoutMs = checkArg(
      intInRange(1, MAX_TIMEOUT_S * 1000),
      o.timeoutMs ?? distTimeoutMs(),
      'timeoutMs',
    );
    const native = await withJsStack(
      loadNative().ProcessGroup.create({
        rank: o.rank,
        worldSize,
        masterAddr: o.masterAddr,
        masterPort: port,
        backend: o.backend ?? backendFor(device),
        timeoutMs,
        device,
      }),
      'ProcessGroup.create',
    );
    return new ProcessGroup(native);
  }

  /** The group this process's environment describes (env.ts), on `device`. */
  static fromEnv(dist: DistEnv, device: string, timeoutMs?: number): Promise<ProcessGroup> {
    return ProcessGroup.create({
      rank: dist.rank,
      worldSize: dist.worldSize,
      masterAddr: dist.masterAddr,
      masterPort: dist.masterPort,
      device,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  }

  /** This process's rank in the group. */
  get rank(): number {
    return this.nativeGroup.info().rank;
  }
  /** The number of ranks. */
  get worldSize(): number {
    return this.nativeGroup.info().worldSize;
  }
  /** 'gloo' or 'nccl'. */
  get backend(): string {
    return this.nativeGroup.info().backend;
  }
  /** Where collective tensors live. */
  get device(): string {
    return this.nativeGroup.info().device;
  }

  /** Element-wise sum over all ranks (a new array; the input is copied when the call is made). */
  allReduce(values: Float32Array): Promise<Float32Array> {
    if (!(values instanceof Float32Array)) throw new TypeError('values must be a Float32Array');
    return withJsStack(this.nativeGroup.allReduce(values), 'ProcessGroup.allReduce');
  }

  /** Rank 0's values on every rank (same length everywhere). */
  broadcast(values: Float32Array): Promise<Float32Array> {
    if (!(values instanceof Float32Array)) throw new TypeError('values must be a Float32Array');
    return withJsStack(this.nativeGroup.broadcast(values), 'ProcessGroup.broadcast');
  }

  barrier(timeoutMs?: number): Promise<void> {
    if (timeoutMs !== undefined) checkArg(intInRange(1, MAX_TIMEOUT_S * 1000), timeoutMs, 'timeoutMs');
    return withJsStack(this.nativeGroup.barrier(timeoutMs), 'ProcessGroup.barrier');
  }

  /** Leaves the group (peers blocked on this rank then fail with ERR_DIST_PEER). Idempotent. */
  close(): Promise<void> {
    return this.nativeGroup.close();
  }
}

/** A string (e.g. the run folder rank 0 chose) sent from rank 0 to every rank. */
export async function broadcastString(g: DataParallel, s: string, maxBytes = 4096): Promise<string> {
  const bytes = new TextEncoder().encode(s);
  if (bytes.length > maxBytes) throw new RangeError(`broadcastString: more than ${maxBytes} bytes`);
  const buf = new Float32Array(maxBytes + 1);
  if (g.rank === 0) {
    buf[0] = bytes.length;
    buf.set(bytes, 1);
  }
  const out = await g.broadcast(buf);
  const n = out[0]!;
  return new TextDecoder().decode(Uint8Array.from(out.subarray(1, 1 + n)));
}
