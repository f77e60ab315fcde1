/** How many event-loop turns ran while an async call was pending: 0 means it ran on the JS thread. */
import { stat } from 'node:fs/promises';

export async function loopTicksDuring<T>(work: () => Promise<T>): Promise<{ result: T; ticks: number }> {
  // From a poll-phase continuation (an fs callback) the next check phase (the first tick) comes before
  // any poll that could deliver the op's completion: a tick can only be missed if the work ran here.
  await stat(import.meta.filename);
  let ticks = 0;
  let running = true;
  const tick = () => {
    ticks++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { result: await work(), ticks };
  } finally {
    running = false;
  }
}
