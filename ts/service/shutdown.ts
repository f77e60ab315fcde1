/**
 * Graceful stop of a service on SIGINT/SIGTERM: stop accepting (new requests get 503), let in-flight
 * requests finish, run the close hooks (createServer's frees the model), then exit 0. A second
 * signal, or a close that outlasts `graceMs`, exits 1 at once.
 */
import { constants } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { intInRange, or, parseOptions, rule } from '../common/options.js';

/** Options of `closeOnSignals`. */
export interface ShutdownOptions {
  signals?: NodeJS.Signals[];
  /** Longest wait for in-flight requests before giving up. Default 30 s. */
  graceMs?: number;
  /** For tests; default process.exit. */
  exit?: (code: number) => void;
}

const DEFAULT_GRACE_MS = 30_000;

/** ShutdownOptions as a schema: a NaN grace became Node's 1 ms timer, dropping every request in flight. */
const ShutdownOptionsSchema = z
  .object({
    signals: or(
      rule<NodeJS.Signals[]>(
        (v) =>
          Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s in constants.signals),
        (v) => `must be a non-empty list of signal names (SIGINT, SIGTERM, …), got ${JSON.stringify(v)}`,
      ),
      ['SIGINT', 'SIGTERM'],
    ),
    graceMs: or(intInRange(0, 2 ** 31 - 1), DEFAULT_GRACE_MS),
    exit: rule<(code: number) => void>(
      (v) => typeof v === 'function',
      (v) => `must be a function, got ${typeof v}`,
      'type',
    ).optional(),
  })
  .strict();

/**
 * Installs the handlers; returns a function that removes them.
 * @throws {TypeError} an unknown option or one of the wrong type.
 * @throws {RangeError} `graceMs` is not an integer from 0 to 2³¹ − 1, or `signals` names no signal.
 */
export function closeOnSignals(
  app: Pick<FastifyInstance, 'close' | 'log'>,
  shutdownOptions: ShutdownOptions = {},
) {
  const options = parseOptions(ShutdownOptionsSchema, shutdownOptions, 'closeOnSignals');
  const signals = options.signals;
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
      app.log.error(`in-flight requests still running after ${options.graceMs} ms: exiting`);
      exit(1);
    }, options.graceMs);
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
