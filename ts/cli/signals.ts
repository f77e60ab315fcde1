/** Ctrl-C / SIGTERM during long runs. */
import { type SignalStop, stopOnSignals } from '../common/interrupt.js';

/**
 * First Ctrl-C or SIGTERM: stop at the next step boundary (finished epochs are kept). Second: exit now.
 * The command calls `release()` when it ends.
 */
export function installStop(hint: () => string, o: { quiet?: boolean } = {}): SignalStop {
  // ranks other than 0 stop alike but say nothing: rank 0 speaks for the group
  const say = (s: string) => {
    if (!o.quiet) process.stderr.write(s);
  };
  return stopOnSignals(['SIGINT', 'SIGTERM'], {
    onStop: () => say(`\nstopping after the current step (Ctrl-C again to exit now). ${hint()}\n`),
    onForced: () => say('\nforced exit\n'),
  });
}
