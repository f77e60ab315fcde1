/** Worker thread for synthesize(): renders the images it is sent, one message per image. */
import { parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { type PlannedImage, type RenderSettings, renderOne } from './render.js';

sharp.concurrency(1);
parentPort?.on('message', async (msg: { job: number; img: PlannedImage; settings: RenderSettings }) => {
  try {
    const line = await renderOne(msg.img, msg.settings);
    parentPort?.postMessage({ job: msg.job, line });
  } catch (e) {
    parentPort?.postMessage({ job: msg.job, error: (e as Error).message });
  }
});
