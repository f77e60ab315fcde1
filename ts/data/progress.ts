/** Progress reporting for the data commands: a cli-progress bar on a TTY, sparse log lines otherwise. */
import cliProgress from 'cli-progress';
import { DataError } from './errors.js';

export function progress(
  label: string,
  enabled = true,
): { update: (done: number, total: number) => void; stop: () => void } {
  if (!enabled) return { update: () => {}, stop: () => {} };
  if (!process.stderr.isTTY) {
    let lastPct = -1;
    return {
      update(done, total) {
        const pct = total ? Math.floor((100 * done) / total / 10) * 10 : 100;
        if (pct !== lastPct) {
          lastPct = pct;
          process.stderr.write(`[${label}] ${done}/${total}\n`);
        }
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total} {eta_formatted} left`,
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(done);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** Runs a command body; data errors and option errors print one clear line and set the exit code. */
export async function runDataCommand(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    const err = e as Error;
    const zod = err.name === 'ZodError';
    process.stderr.write(`error: ${zod ? `invalid option: ${err.message}` : err.message}\n`);
    if (process.env['CXRMASK_DEBUG']) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err instanceof DataError || zod ? 2 : 1;
  }
}

export function parseList(s: string | undefined): string[] | undefined {
  if (s === undefined) return undefined;
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}
