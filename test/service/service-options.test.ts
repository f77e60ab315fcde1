/**
 * createServer and closeOnSignals check their options as the rest of the API does (ts/common/options.ts):
 * a NaN maxQueue (\`Number(process.env.MAX_QUEUE)\` with the variable unset) lifted the admission
 * bound, a misspelt key was ignored, and a NaN grace became a 1 ms timer that dropped every request
 * in flight.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type ServiceOptions } from '../../ts/service/http.js';
import { closeOnSignals } from '../../ts/service/shutdown.js';

/** What createServer needs of a predictor; never called here. */
const predictor = {
  kind: 'classifier',
  pending: 0,
  predict: async () => {
    throw new Error('not called');
  },
  dispose: async () => {},
} as unknown as ServiceOptions['predictor'];

const refused = (f: () => unknown, type: typeof TypeError | typeof RangeError, message: RegExp) => {
  try {
    f();
  } catch (e) {
    assert.instance(e, type);
    assert.match((e as Error).message, message);
    return;
  }
  assert.unreachable(`accepted: ${f}`);
};

test('createServer refuses a NaN, zero or fractional maxQueue, a misspelt key, a wrong type and a missing predictor', async () => {
  refused(
    () => createServer({ predictor, maxQueue: Number.NaN }),
    RangeError,
    /createServer option 'maxQueue'.*got NaN/,
  );
  refused(() => createServer({ predictor, maxQueue: 0 }), RangeError, /maxQueue must be an integer from 1/);
  refused(() => createServer({ predictor, maxQueue: 2.5 }), RangeError, /maxQueue/);
  refused(() => createServer({ predictor, bodyLimit: -1 }), RangeError, /bodyLimit/);
  refused(() => createServer({ predictor, requestTimeoutMs: -5 }), RangeError, /requestTimeoutMs/);
  refused(
    () => createServer({ predictor, maxqueue: 4 } as unknown as ServiceOptions),
    TypeError,
    /unknown createServer option 'maxqueue' \(known: predictor, .*maxQueue/,
  );
  refused(
    () => createServer({ predictor, requireRow: 'no' } as unknown as ServiceOptions),
    TypeError,
    /requireRow must be a boolean/,
  );
  refused(() => createServer({} as ServiceOptions), TypeError, /predictor must be a loaded predictor/);
  refused(
    () => createServer({ predictor, disposeOnClose: 'no' } as unknown as ServiceOptions),
    TypeError,
    /disposeOnClose must be a boolean, got 'no'/,
  );
  // the defaults and good values still make a server
  const app = createServer({ predictor, maxQueue: 3, requireRow: true, disposeOnClose: false });
  const health = await app.inject({ method: 'GET', url: '/healthz' });
  assert.is(health.json().maxQueue, 3);
  await app.close();
});

test('closeOnSignals refuses a NaN or negative grace and an unknown signal, before installing anything', async () => {
  const app = createServer({ predictor, disposeOnClose: false });
  const before = process.listeners('SIGTERM').length;
  refused(
    () => closeOnSignals(app, { graceMs: Number.NaN }),
    RangeError,
    /closeOnSignals option 'graceMs'.*got NaN/,
  );
  refused(() => closeOnSignals(app, { graceMs: -1 }), RangeError, /graceMs/);
  refused(
    () => closeOnSignals(app, { signals: ['SIGFOO' as NodeJS.Signals] }),
    RangeError,
    /signals must be a non-empty list of signal names/,
  );
  assert.is(process.listeners('SIGTERM').length, before, 'no handler left behind');
  const remove = closeOnSignals(app, { graceMs: 0, exit: () => {} });
  assert.is(process.listeners('SIGTERM').length, before + 1);
  remove();
  await app.close();
});

test.run();
