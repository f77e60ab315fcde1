/** A finished two-seed fake run (fake backend), for the tests of what the reports say about it. */

import { join } from 'node:path';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { parseConfig } from '../../ts/experiment/config.js';
import type { Results } from '../../ts/experiment/results.js';
import { fakeBackend } from '../experiment/fake-backend.js';

let finished: Results | null = null;

/** The run's results (a copy each call: a test may edit it); the run is made once, under `tmp`. */
export async function fakeResults(tmp: string): Promise<Results> {
  finished ??= (
    await runExperiment({
      config: parseConfig({
        runsDir: join(tmp, 'runs'),
        name: 'report-text',
        data: { cache: 'unused' },
        seeds: [0, 1],
        linearProbe: { epochs: 2, batchSize: 16, lr: 0.05 },
        finetune: { enabled: false },
        metrics: { bootstrap: 20 },
      }),
      backend: fakeBackend(),
    })
  ).results;
  return structuredClone(finished);
}
