/** Ctrl-C / SIGTERM during long runs. */
import { type SignalStop, stopOnSignals } from '../common/interrupt.js';

/**
 * First Ctrl-C or SIGTERM: stop at the next step boundary (finished epochs are kept). Second: exit now.
 * The command calls `release()` when it ends.
 */
export function installStop(hint: () => string): SignalStop {
  return stopOnSignals(['SIGINT', 'SIGTERM'], {
    onStop: () =>
      process.stderr.write(`\nstopping after the current step (Ctrl-C again to exit now). ${hint()}\n`),
    onForced: () => process.stderr.write('\nforced exit\n'),
  });
}
