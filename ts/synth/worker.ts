/** Worker thread for synthesize(): renders the images it is sent, one message per image. */
import { parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { DataError } from '../common/errors.js';
import { type PlannedImage, type RenderSettings, renderOne } from './render.js';

sharp.concurrency(1);
parentPort?.on('message', async (msg: { job: number; img: PlannedImage; settings: RenderSettings }) => {
  try {
    const line = await renderOne(msg.img, msg.settings);
    parentPort?.postMessage({ job: msg.job, line });
  } catch (e) {
    // a DataError (a write that failed) stays one on the other side: the CLI exits 2 for it
    const reason = e instanceof DataError ? e.reason : undefined;
    parentPort?.postMessage({ job: msg.job, error: (e as Error).message, reason });
  }
});
