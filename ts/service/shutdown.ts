/**
 * Graceful stop of a service on SIGINT/SIGTERM: stop accepting (new requests get 503), let in-flight
 * requests finish, run the close hooks (createServer's frees the model), then exit 0. A second
 * signal, or a close that outlasts `graceMs`, exits 1 at once.
 */
import type { FastifyInstance } from 'fastify';

/** Options of `closeOnSignals`. */
export interface ShutdownOptions {
  signals?: NodeJS.Signals[];
  /** Longest wait for in-flight requests before giving up. Default 30 s. */
  graceMs?: number;
  /** For tests; default process.exit. */
  exit?: (code: number) => void;
}

/** Installs the handlers; returns a function that removes them. */
export function closeOnSignals(app: Pick<FastifyInstance, 'close' | 'log'>, options: ShutdownOptions = {}) {
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      app.log.warn(`${signal} again: exiting without waiting`);
      exit(1);
      return;
    }
    closing = true;
    app.log.info(`${signal}: finishing in-flight requests, then exiting`);
    const timer = setTimeout(() => {
      app.log.error(`in-flight requests still running after ${options.graceMs ?? 30000} ms: exiting`);
      exit(1);
    }, options.graceMs ?? 30000);
    timer.unref();
    app.close().then(
      () => {
        clearTimeout(timer);
        exit(0);
      },
      (e: unknown) => {
        clearTimeout(timer);
        app.log.error({ err: e }, 'close failed');
        exit(1);
      },
    );
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}
