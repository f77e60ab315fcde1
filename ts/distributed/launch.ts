/**
 * `cxrmask … --nproc N`: starts N local copies of this command with torchrun's variables (RANK,
 * LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT=a free port), like
 * `torchrun --standalone --nproc-per-node N`. When one rank fails, the others are stopped (they would
 * otherwise wait for it until the collective timeout), and the launcher exits with its code.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { EXIT_INTERRUPTED } from '../common/report-error.js';
import { readDistEnv } from '../model/dist-env.js';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** argv without `--nproc N` / `--nproc=N` (the children must not launch again). */
export function withoutNproc(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--nproc') {
      i++;
      continue;
    }
    if (a.startsWith('--nproc=')) continue;
    out.push(a);
  }
  return out;
}

/** Most local ranks: one process each (a typo such as 100000 would fork until the machine gives out). */
export const MAX_LOCAL_RANKS = Math.max(64, availableParallelism());

/**
 * Runs `nproc` ranks of `args` (a node script and its arguments) and resolves with the exit code:
 * 0 when all succeed, else the first failing rank's code (1 when it died of a signal).
 */
export async function launchLocal(
  nproc: number,
  args: readonly string[] = process.argv.slice(1),
  opts: { env?: NodeJS.ProcessEnv; execArgv?: readonly string[] } = {},
): Promise<number> {
  if (!Number.isInteger(nproc) || nproc < 1 || nproc > MAX_LOCAL_RANKS)
    throw new RangeError(`--nproc must be an integer from 1 to ${MAX_LOCAL_RANKS}, got ${nproc}`);
  const port = await freePort();
  const env = opts.env ?? process.env;
  const threads = rankThreads(env, nproc);
  const children: ChildProcess[] = [];
  const ends = Array.from({ length: nproc }, (_, rank) => {
    const child = spawn(process.execPath, [...(opts.execArgv ?? process.execArgv), ...withoutNproc(args)], {
      env: {
        ...env,
        ...(threads ? { OMP_NUM_THREADS: String(threads) } : {}),
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: String(nproc),
        LOCAL_WORLD_SIZE: String(nproc),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
      },
      stdio: 'inherit',
    });
    children.push(child);
    return new Promise<{ rank: number; code: number; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ rank, code: code ?? (signal ? 1 : 0), signal })),
    );
  });
  // A SIGTERM to the launcher is passed on. Ctrl-C reaches every rank through the terminal's process
  // group: the launcher waits for them (their stop, their exit 130) instead of dying at once and
  // giving the prompt back while they still run, out of reach of a second Ctrl-C.
  const forward = () => {
    for (const c of children) c.kill('SIGTERM');
  };
  const waitForRanks = () => {};
  process.once('SIGTERM', forward);
  process.on('SIGINT', waitForRanks);
  let first: { rank: number; code: number } | null = null;
  const pending = new Set(ends);
  while (pending.size) {
    const done = await Promise.race([...pending].map((p) => p.then((r) => ({ p, r }))));
    pending.delete(done.p);
    if (done.r.code !== 0 && !first) {
      first = done.r;
      // a stopped rank (130) is one of many told to stop: nothing to add
      if (done.r.code !== EXIT_INTERRUPTED)
        process.stderr.write(`cxrmask: rank ${done.r.rank} ${endedHow(done.r)}; stopping the others\n`);
      for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    }
  }
  process.off('SIGTERM', forward);
  process.off('SIGINT', waitForRanks);
  return first ? first.code : 0;
}

/** How a rank ended, in words: a signal death (the OOM killer's SIGKILL) is not an exit code. */
function endedHow(r: { code: number; signal: NodeJS.Signals | null }): string {
  if (!r.signal) return `exited with code ${r.code}`;
  return `was killed by ${r.signal}${r.signal === 'SIGKILL' ? ' (out of memory? the kernel log says)' : ''}`;
}

/**
 * Intra-op threads per rank where the user set none: N ranks each taking every core oversubscribe
 * the CPU many times over (127-295 s against 19-21 s for one small run on 2 cores). torchrun sets
 * OMP_NUM_THREADS=1; here each rank gets its share of the cores. Null: OMP_NUM_THREADS is set.
 */
function rankThreads(env: NodeJS.ProcessEnv, nproc: number): number | null {
  if (env['OMP_NUM_THREADS'] || nproc < 2) return null;
  const threads = Math.max(1, Math.floor(availableParallelism() / nproc));
  process.stderr.write(
    `cxrmask: OMP_NUM_THREADS=${threads} for each of the ${nproc} ranks (${availableParallelism()} cores); set OMP_NUM_THREADS or model.threads to choose\n`,
  );
  return threads;
}

/** The `--nproc` option's help, shared by the training commands. */
export const NPROC_HELP =
  'data-parallel training in N local processes (like torchrun --standalone --nproc-per-node N): one per GPU on CUDA (cuda:0..N-1), else N CPU processes over gloo; see docs/distributed.md';

/**
 * `--nproc N` in a process that is not yet a rank: launches the N ranks, sets the exit code, and
 * returns true (the caller stops); otherwise false (a single process, or already a rank).
 */
export async function launchIfAsked(nproc: number | undefined): Promise<boolean> {
  if (nproc === undefined || nproc <= 1 || readDistEnv()) return false;
  process.exitCode = await launchLocal(nproc);
  return true;
}
