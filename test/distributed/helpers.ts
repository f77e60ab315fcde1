/** Spawning the ranks of a local data-parallel job for the tests (gloo on 127.0.0.1). */
import { type ChildProcess, spawn } from 'node:child_process';
import { freePort } from '../../ts/distributed/launch.js';

export { freePort };

export interface Rank {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when a stdout line matches. */
  saw(re: RegExp): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

export function spawnTs(script: string, args: string[], env: Record<string, string>): Rank {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) (w.re.test(out) ? w.resolve : () => waiters.push(w))();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    saw: (re) =>
      new Promise((resolve) => {
        if (re.test(out)) resolve();
        else waiters.push({ re, resolve });
      }),
    exited,
  };
}

/** `worldSize` ranks of `script` with torchrun's variables. */
export async function spawnRanks(
  script: string,
  worldSize: number,
  env: Record<string, string>,
  args: string[] = [],
): Promise<Rank[]> {
  const port = await freePort();
  return Array.from({ length: worldSize }, (_, rank) =>
    spawnTs(script, args, {
      ...env,
      RANK: String(rank),
      LOCAL_RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port),
    }),
  );
}
