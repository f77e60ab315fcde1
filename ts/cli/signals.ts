/** Ctrl-C / SIGTERM during long runs. */
import { type StopSignal, stopOnSignals } from '../common/interrupt.js';

/** First Ctrl-C or SIGTERM: stop at the next step boundary (finished epochs are kept). Second: exit now. */
export function installStop(hint: () => string): StopSignal {
  return stopOnSignals(['SIGINT', 'SIGTERM'], {
    onStop: () =>
      process.stderr.write(`\nstopping after the current step (Ctrl-C again to exit now). ${hint()}\n`),
    onForced: () => process.stderr.write('\nforced exit\n'),
  });
}
