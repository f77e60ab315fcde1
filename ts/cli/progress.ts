/** Progress of the data commands (cache, synth): a cli-progress bar on a TTY, sparse log lines otherwise. */
import cliProgress from 'cli-progress';

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
