/**
 * What a run records of its threads (results.json run.versions.threads) is what is set: under
 * `--nproc` the device was resolved (and the diagnostics read) before config.model.threads was
 * applied, and the record kept the earlier counts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { realModelBackend } from '../../ts/model/backend-real.js';
import { diagnostics, setThreads } from '../../ts/native.js';

test('versions() after setThreads reports the threads set, even when the device was resolved first', () => {
  const before = diagnostics().threads;
  const b = realModelBackend();
  b.resolveDevice('auto'); // reads the diagnostics, as joining a process group does
  try {
    b.setThreads?.(1);
    const t = b.versions().threads as { intraOp: number; requested: number };
    assert.equal([t.intraOp, t.requested], [1, 1]);
  } finally {
    if (before.requested > 0) setThreads(before.requested);
    else if (before.intraOp > 0) setThreads(before.intraOp);
  }
});

test.run();
