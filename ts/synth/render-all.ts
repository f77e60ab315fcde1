/** Renders the planned images, on worker threads when asked (each image has its own PRNG stream, so the order does not matter). */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DataError } from '../common/errors.js';
import { type PlannedImage, type RenderSettings, renderOne } from './render.js';

/** A worker running ./worker.js (built) or ./worker.ts (under tsx, which the worker must register itself). */
function makeWorkerFactory(): (() => Worker) | null {
  const js = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return () => new Worker(js);
  const ts = new URL('./worker.ts', import.meta.url);
  if (!existsSync(fileURLToPath(ts))) return null;
  let api: string;
  try {
    api = import.meta.resolve('tsx/esm/api');
  } catch {
    return null;
  }
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); });`;
  return () => new Worker(code, { eval: true });
}

/** Renders every planned image; returns the CheXmask CSV line per image ('' when none). */
export async function renderAll(
  plan: PlannedImage[],
  settings: RenderSettings,
  nWorkers: number,
  concurrency: number,
  onProgress?: (done: number, total: number) => void,
): Promise<string[]> {
  const lines: string[] = new Array(plan.length).fill('');
  let done = 0;
  const tick = () => {
    done++;
    onProgress?.(done, plan.length);
  };
  const factory = nWorkers > 0 ? makeWorkerFactory() : null;
  if (factory) {
    const workers = Array.from({ length: nWorkers }, factory);
    try {
      let next = 0;
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              const send = () => {
                if (next >= plan.length) return resolve();
                const job = next++;
                w.postMessage({ job, img: plan[job], settings });
              };
              w.on('message', (m: { job: number; line?: string; error?: string; reason?: string }) => {
                if (m.error !== undefined)
                  return reject(
                    m.reason === undefined
                      ? new Error(`synth image ${plan[m.job]?.path}: ${m.error}`)
                      : new DataError(m.reason, m.error),
                  );
                lines[m.job] = m.line ?? '';
                tick();
                send();
              });
              w.on('error', reject);
              send();
            }),
        ),
      );
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
    return lines;
  }
  const inflight = new Set<Promise<void>>();
  for (let k = 0; k < plan.length; k++) {
    const job = k;
    const p: Promise<void> = renderOne(plan[job], settings).then((line) => {
      lines[job] = line;
      tick();
    });
    const tracked: Promise<void> = p.finally(() => inflight.delete(tracked));
    inflight.add(tracked);
    if (inflight.size >= concurrency) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  return lines;
}
