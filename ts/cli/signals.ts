/** Ctrl-C / SIGTERM during long runs. */

/** First Ctrl-C: stop at the next step boundary (finished epochs are kept). Second: exit now. */
import type { StopSignal } from '../common/interrupt.js';
export function installStop(hint: () => string): StopSignal {
  const signal: StopSignal = { stop: false };
  const onSig = () => {
    if (signal.stop) {
      process.stderr.write('\nforced exit\n');
      process.exit(130);
    }
    signal.stop = true;
    process.stderr.write(`\nstopping after the current step (Ctrl-C again to exit now). ${hint()}\n`);
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return signal;
}
