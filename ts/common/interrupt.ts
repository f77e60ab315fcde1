/**
 * Stopping long runs on request: Ctrl-C / SIGTERM, the loss of the parent a worker was started by, and
 * the child processes that must stop with them.
 */
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { InterruptedError } from './errors.js';

/** Set `stop = true` (e.g. on SIGINT) to make a long loop (training, caching, attribution) stop at its next step boundary. */
export interface StopSignal {
  stop: boolean;
}

// Children that work for this process (cell workers): an exit-now kills them first, so none goes on
// writing into a run folder that a later --resume takes over.
const children = new Set<ChildProcess>();

/** Registers `child` until it exits: a forced exit (stopOnSignals) kills it before this process ends. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** A StopSignal set by process signals; `release()` takes its handlers off the process again. */
export interface SignalStop extends StopSignal {
  release(): void;
}

/**
 * The first of `signals` sets `stop` (work ends at its next step boundary) and calls `onStop`; a
 * second one kills the tracked children and exits now with code 130, after `onForced`. A command run
 * in a longer-lived process (a test, a service) calls `release()` when it ends: a handler left on the
 * process would count that process's next signal as this command's second and exit it.
 */
export function stopOnSignals(
  signals: readonly NodeJS.Signals[],
  o: { onStop?: () => void; onForced?: () => void } = {},
): SignalStop {
  const signal: SignalStop = {
    stop: false,
    release: () => {
      for (const s of signals) process.off(s, onSignal);
    },
  };
  const onSignal = () => {
    if (signal.stop) {
      o.onForced?.();
      for (const c of children) c.kill('SIGKILL');
      process.exit(130);
    }
    signal.stop = true;
    o.onStop?.();
  };
  for (const s of signals) process.on(s, onSignal);
  return signal;
}

/**
 * Stops `signal` as the first signal of stopOnSignals does (work ends at its next step boundary) when
 * this process's parent is gone: the IPC channel it was started with closes, which also happens when
 * the parent is SIGKILLed or taken by the OOM killer and so never tells its children. A worker left
 * training would go on writing into a folder that a later `--resume` takes over. Calls `onGone` once
 * when it stops `signal`. Without a channel (started by hand) it watches nothing.
 * @returns a function that stops watching: call it before the process closes the channel itself.
 */
export function stopOnParentExit(signal: StopSignal, onGone?: () => void): () => void {
  if (!process.send) return () => {};
  const gone = () => {
    if (signal.stop) return;
    signal.stop = true;
    onGone?.();
  };
  // the parent may have died before this process got this far: the channel is closed already
  if (!process.connected) {
    gone();
    return () => {};
  }
  process.once('disconnect', gone);
  return () => process.off('disconnect', gone);
}

/**
 * Synchronous work cut into steps: a generator that yields between steps and returns the result.
 * `finishSteps` runs it in one go; `finishStepsInTurns` gives the event loop a turn now and then, so
 * that a Ctrl-C handler runs during minutes of arithmetic instead of after it.
 */
export type Steps<T> = Generator<void, T, void>;

/** Runs `steps` to its result without pausing. */
export function finishSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * Runs `steps` to its result, yielding to the event loop every `turnMs` of work (signal handlers run
 * only there), and stops at the next step once `signal.stop` is set.
 * @throws {InterruptedError} (rejects) `signal` was stopped; the message is `stoppedWhile`.
 */
export async function finishStepsInTurns<T>(
  steps: Steps<T>,
  signal: StopSignal | undefined,
  stoppedWhile: string,
  turnMs = 50,
): Promise<T> {
  let turnStart = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - turnStart < turnMs) continue;
    await nextTurn();
    if (signal?.stop) throw new InterruptedError(stoppedWhile);
    turnStart = performance.now();
  }
}
