/** Joining the group a launcher (torchrun, Slurm, --nproc) described, for the experiment commands. */
import type { Backend } from '../experiment/backend.js';
import type { ExperimentConfig } from '../experiment/config.js';
import { distTimeoutMs, rankDevice, readDistEnv, rootWorkTimeoutMs } from '../model/dist-env.js';
import { ProcessGroup } from '../model/process-group.js';

/**
 * The group of this process and the device it trains on (cuda:LOCAL_RANK when the config's device
 * resolves to CUDA, else cpu), or null when the environment names no job of more than one process.
 * @throws {ConfigError} the environment is inconsistent (env.ts).
 * @throws {NativeError} (rejects) the rendezvous fails or times out.
 */
export async function joinGroupFromEnv(
  backend: Backend,
  config: ExperimentConfig,
): Promise<{ group: ProcessGroup; device: string } | null> {
  const env = readDistEnv();
  if (!env) return null;
  // both timeouts are read from the environment: a bad one is refused before joining
  distTimeoutMs();
  rootWorkTimeoutMs();
  const device = rankDevice(env, backend.resolveDevice(config.model.device) === 'cuda');
  return { group: await ProcessGroup.fromEnv(env, device), device };
}
