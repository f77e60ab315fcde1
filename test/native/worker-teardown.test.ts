/**
 * A worker thread that ends with a native op in flight (terminate(), or process.exit inside it) takes
 * only itself down: the op's result is dropped, and the process that hosts the worker lives on. Each
 * case runs in a child process, since the failure this guards against is a SIGABRT of the whole
 * process. The worker loads the addon itself (tsx does not register inside worker threads on Node 20).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonPath } from '../../ts/native.js';
import { MODEL_DIR, requireModel } from './helpers.js';

/** The worker: loops encodeImage (NaN input when `fail`: every op rejects) and ends itself or says it is busy. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const addon = require(workerData.addon);
(async () => {
  const model = await addon.ClipModel.load(workerData.model, 'cpu');
  const n = 8;
  const x = new Float32Array(n * 3 * 224 * 224).fill(workerData.fail ? NaN : 0.5);
  if (workerData.sync) {
    // sync calls refused by the addon, back to back: terminate() lands inside one, where the
    // refusal can no longer be thrown into JS
    parentPort.postMessage('busy');
    for (;;) {
      try {
        model.encodeImage(x, [n + 1, 3, 224, 224], false);
      } catch {}
    }
  }
  for (let first = true; ; first = false) {
    const op = model.encodeImage(x, [n, 3, 224, 224], false).catch(() => {});
    if (first && workerData.end === 'exit') process.exit(3);
    if (first) parentPort.postMessage('busy');
    await op;
  }
})();
`;

/** The host: starts the worker, terminates it once busy (unless it exits itself), then lives on a while. */
const HOST = `
const { Worker } = require('node:worker_threads');
const workerData = JSON.parse(process.argv[1]);
const w = new Worker(${JSON.stringify(WORKER)}, { eval: true, workerData });
w.on('error', (e) => { console.log('worker error', e.message); process.exitCode = 1; });
w.once('message', () => { if (workerData.end === 'terminate') w.terminate(); });
w.on('exit', (code) => {
  console.log('worker exit ' + code); // not console.log(a, b): FORCE_COLOR would colour the number
  setTimeout(() => console.log('host alive'), 200);
});
`;

function host(
  end: 'terminate' | 'exit',
  fail: boolean,
  sync = false,
): { status: number | null; signal: string | null; out: string } {
  const data = { addon: addonPath(), model: join(MODEL_DIR, 'clip.pt'), end, fail, sync };
  const r = spawnSync(process.execPath, ['-e', HOST, JSON.stringify(data)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

for (const end of ['terminate', 'exit'] as const) {
  for (const fail of [false, true]) {
    test(`a worker ended by ${end === 'exit' ? 'process.exit' : 'terminate()'} with a ${fail ? 'failing' : 'succeeding'} op in flight leaves its host running`, () => {
      requireModel();
      const r = host(end, fail);
      assert.equal([r.status, r.signal], [0, null], r.out);
      assert.ok(r.out.includes(`worker exit ${end === 'exit' ? 3 : 1}\n`), r.out);
      assert.ok(r.out.includes('host alive'), r.out);
    });
  }
}

test('a worker terminated while it makes sync calls the addon refuses leaves its host running (ten tries)', () => {
  requireModel();
  for (let i = 0; i < 10; i++) {
    const r = host('terminate', false, true);
    assert.equal([r.status, r.signal], [0, null], r.out);
    assert.ok(r.out.includes('worker exit 1\n'), r.out);
    assert.ok(r.out.includes('host alive'), r.out);
  }
});

test.run();
