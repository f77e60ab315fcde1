/**
 * One process at a time per run folder. Two `--resume` (or a resume and an `eval`) of the same folder
 * would train the same cells into the same checkpoints and temp files; the second is refused with the
 * holder's pid, host and start time. The lock is `<run>/run.lock`, created with O_EXCL and holding
 * {pid, host, startedAt, command, workers}; it is removed when the holder ends, however it ends. A lock
 * left by a process that died (same host, pid no longer running) is stale and taken over; one from
 * another host cannot be checked and is reported with the way to remove it. The pid is this process's:
 * a cell worker (distributed/devices.ts) runs under its parent's lock, which records the pids of the
 * workers running (`workers`, rewritten atomically as they start and end). A worker stops when its
 * parent is gone (common/interrupt.ts stopOnParentExit), but only at its next step boundary, and an
 * epoch's end (checkpoints, state.json, pruning) may still follow: so a takeover first waits for the
 * recorded workers still running (up to WORKER_WAIT_MS) and refuses, naming them, if they outlast it.
 *
 * Taking the lock is also where a folder that may come from someone else is checked for a planted
 * symlinked subfolder (`cells -> /elsewhere`, files.ts refuseLinkedFolders): every process that writes
 * into a run folder (a new run, `--resume`, `eval`) takes it first.
 */
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../common/errors.js';
import { refuseLinkedFolders, refuseNonFile } from '../common/files.js';
import { writeJsonAtomic } from '../common/io.js';

export const RUN_LOCK_FILE = 'run.lock';

export interface RunLockInfo {
  pid: number;
  host: string;
  startedAt: string;
  command: string;
  /** The cell workers (`--devices`) running under this lock, on the same host. */
  workers?: number[];
}

/** An empty or unreadable lock younger than this is being written by its holder, not stale. */
const UNWRITTEN_LOCK_MS = 10_000;

/** How long a takeover waits for a dead holder's workers to stop (each stops at its next step). */
const WORKER_WAIT_MS = 60_000;
const WORKER_POLL_MS = 150;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, owned by someone else
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(path: string): RunLockInfo | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as RunLockInfo;
    if (!Number.isInteger(v?.pid) || typeof v.host !== 'string') return null;
    // a malformed list is read as no workers (the holder's pid still decides)
    if (v.workers !== undefined && !(Array.isArray(v.workers) && v.workers.every(Number.isInteger)))
      v.workers = [];
    return v;
  } catch {
    return null;
  }
}

/** Why the lock at `path` no longer protects anything (null while its holder may still run). */
function staleReason(path: string, info: RunLockInfo | null): string | null {
  if (info === null) {
    let age = 0;
    try {
      age = Date.now() - statSync(path).mtimeMs;
    } catch {
      return 'gone';
    }
    return age > UNWRITTEN_LOCK_MS ? 'unreadable and old' : null;
  }
  if (info.host !== hostname()) return null;
  if (info.pid === process.pid) return null;
  return alive(info.pid) ? null : `process ${info.pid} is no longer running`;
}

export interface RunLock {
  path: string;
  /** Set when a stale lock was taken over: why it was stale. */
  tookOver: string | null;
  /**
   * Records the pids of the cell workers now writing under this lock (all of them, replacing the last
   * list), so that a takeover after this process dies waits for them.
   */
  setWorkers(pids: readonly number[]): void;
  release(): void;
}

/**
 * The recorded workers of a dead holder's lock still running (their host is this one). An orphan that
 * has exited but is not yet reaped (a zombie: a container's pid 1 may never reap it) writes nothing.
 */
function liveWorkers(info: RunLockInfo | null): number[] {
  return (info?.workers ?? []).filter((pid) => pid !== process.pid && alive(pid) && !zombie(pid));
}

function zombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false; // no /proc (not Linux), or gone
  }
}

function inUseError(path: string, held: RunLockInfo | null): DataError {
  const who = held
    ? `process ${held.pid} on ${held.host} (since ${held.startedAt}: ${held.command})`
    : 'a process that is starting';
  const hint =
    held && held.host !== hostname()
      ? `; if that process no longer runs, delete ${path}`
      : '; wait for it to finish, or stop it';
  return new DataError('run-in-use', `the run folder is in use by ${who}${hint}`, { file: path });
}

/** A dead holder's workers stop at their next step boundary: waits up to `waitMs` for them to end. */
async function waitForWorkers(path: string, held: RunLockInfo, waitMs: number): Promise<void> {
  const until = Date.now() + waitMs;
  while (liveWorkers(held).length && Date.now() < until) await sleep(WORKER_POLL_MS);
  const left = liveWorkers(held);
  if (left.length)
    throw new DataError(
      'run-in-use',
      `the run folder's holder, process ${held.pid}, is gone, but its cell workers (pid ${left.join(', ')}) still run; they stop at their next step boundary: retry once they have ended (if those processes are not cxrmask's, delete ${path})`,
      { file: path },
    );
}

/**
 * Moves a stale lock aside under a name of our own before deleting it: of two processes taking it
 * over at once, one renames it and the other finds nothing to rename and retries. If what was moved
 * is a fresh lock another process had just taken, it goes back.
 * @returns whether the stale lock was removed (false: look again).
 */
function removeStaleLock(path: string): boolean {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch {
    return false;
  }
  if (staleReason(aside, readLock(aside)) === null) {
    try {
      linkSync(aside, path);
    } catch {}
    rmSync(aside, { force: true });
    return false;
  }
  rmSync(aside, { force: true });
  return true;
}

/**
 * Takes the lock of `runDir`, once no folder inside it is a symlink (`runDir` itself may be one). A
 * stale lock whose recorded workers still run is taken over once they have ended (waiting up to
 * `workerWaitMs`, default 60 s).
 * @throws {DataError} (rejects; reason `run-in-use`) another live process holds it, naming pid, host
 *   and start, or a dead holder's workers still run after the wait, naming their pids;
 *   (reason `linked-folder`) a folder inside it is a symbolic link, naming it.
 */
export async function lockRun(runDir: string, o: { workerWaitMs?: number } = {}): Promise<RunLock> {
  refuseLinkedFolders(runDir, 'run folder');
  const path = join(runDir, RUN_LOCK_FILE);
  const info: RunLockInfo = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    command: process.argv.slice(1).join(' '),
  };
  let tookOver: string | null = null;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' || attempt >= 3)
        throw new DataError('run-lock-failed', `cannot take the run folder's lock: ${(e as Error).message}`, {
          file: path,
        });
      // a FIFO in its place would block the read below forever; no process of ours makes one
      refuseNonFile(path);
      const held = readLock(path);
      const stale = staleReason(path, held);
      if (stale === null) throw inUseError(path, held);
      if (liveWorkers(held).length) {
        await waitForWorkers(path, held as RunLockInfo, o.workerWaitMs ?? WORKER_WAIT_MS);
        attempt--; // the wait was no failed attempt: look at the lock afresh
        continue;
      }
      if (removeStaleLock(path)) tookOver = stale;
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(info)}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      process.off('exit', release);
      // only our own lock is removed
      if (readLock(path)?.pid === process.pid) rmSync(path, { force: true });
    };
    // A second Ctrl-C exits at once (process.exit, common/interrupt.ts), past the command's `finally`:
    // the lock goes with the process all the same, or a resume from another host is refused until
    // someone deletes it by hand.
    process.once('exit', release);
    return {
      path,
      tookOver,
      setWorkers(pids) {
        // only our own lock, while held
        if (released || readLock(path)?.pid !== process.pid) return;
        writeJsonAtomic(path, { ...info, workers: [...pids] });
      },
      release,
    };
  }
}
