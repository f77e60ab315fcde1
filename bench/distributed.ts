/**
 * JFT training img/s, 1 process against 2 data-parallel processes (gloo on 127.0.0.1) at the same
 * global batch and the same total CPU threads:
 *   node --import tsx bench/distributed.ts [--model models/tiny] [--batch 8] [--steps 8] [--threads 2]
 * (--batch per rank; the single process trains at 2 × batch with --threads threads, each rank with
 * --threads / 2). Prints one JSON line: img/s of each and the ratio (2 processes / 1).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../ts/distributed/launch.js';
import { median, root } from './common.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/tiny' },
    batch: { type: 'string', default: '8' },
    steps: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
  },
});
const batch = Number(a.batch);
const steps = Number(a.steps);
const threads = Number(a.threads);
const worker = join(root, 'test/distributed/fixtures/dp-worker.ts');
const out = mkdtempSync(join(tmpdir(), 'cxrmask-bench-dp-'));

function run(env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', worker], {
      cwd: root,
      env: { ...process.env, OUT_DIR: out, MODEL: a.model!, STEPS: String(steps), ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let s = '';
    c.stdout.on('data', (d: Buffer) => {
      s += d.toString();
    });
    c.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`worker exit ${code}`))));
  });
}
// steady state: the first step (allocations, first-touch) is left out
const stepMs = (log: string) =>
  median(
    [...log.matchAll(/STEP (\d+) rows=\d+ loss=\S+ ms=(\d+)/g)]
      .filter((m) => m[1] !== '0')
      .map((m) => Number(m[2])),
  );

const rows = String(2 * batch * steps);
const single = await run({ BATCH: String(2 * batch), ROWS: rows, THREADS: String(threads), WORLD_SIZE: '' });
const port = String(await freePort());
const ranks = await Promise.all(
  [0, 1].map((rank) =>
    run({
      BATCH: String(batch),
      ROWS: rows,
      THREADS: String(Math.max(1, threads / 2)),
      RANK: String(rank),
      WORLD_SIZE: '2',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: port,
    }),
  ),
);
rmSync(out, { recursive: true, force: true });
const oneImgS = (2 * batch) / (stepMs(single) / 1000);
const twoImgS = (2 * batch) / (Math.max(stepMs(ranks[0]!), stepMs(ranks[1]!)) / 1000);
process.stdout.write(
  `${JSON.stringify({ model: a.model, globalBatch: 2 * batch, threads, oneProcessImgS: oneImgS, twoProcessesImgS: twoImgS, ratio: twoImgS / oneImgS })}\n`,
);
