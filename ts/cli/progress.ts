/**
 * Progress display: `progress` for the data commands (cache, synth), `progressReporter` for the grid
 * (run, train, …). cli-progress bars on a TTY, log lines otherwise.
 */
import cliProgress from 'cli-progress';
import type { GridEvent } from '../experiment/grid.js';

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

/** What the grid's progress display offers the run: events in, and a stop for its bars. */
export interface GridProgress {
  onEvent: (e: GridEvent) => void;
  stop: () => void;
}

/** Grid events as log lines (stderr not a TTY, or --no-progress). */
function gridLog(): GridProgress {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const onEvent = (e: GridEvent) => {
    switch (e.kind) {
      case 'phase':
        if (e.name === 'plan') {
          const total = e.detail ? e.detail.split(',').length : 0;
          log(`[grid] ${total} cells: ${e.detail}`);
        } else log(`[grid] ${e.name}${e.detail ? ` ${e.detail}` : ''}`);
        break;
      case 'features':
        if (e.done === e.total) log(`[features] ${e.variant}: ${e.total} images`);
        break;
      case 'cell-start':
        log(`[${e.id}] start${e.resumedFrom ? ` (resuming after epoch ${e.resumedFrom})` : ''}`);
        break;
      case 'cell-epoch':
        // every epoch that took ≥ 1 s, else every 10th (linear probes run many fast epochs)
        if (e.record.seconds >= 1 || e.record.epoch % 10 === 0)
          log(
            `[${e.id}] epoch ${e.record.epoch}: train loss ${e.record.trainLoss.toFixed(4)}, val AUROC ${
              Number.isFinite(e.record.val.macroAUROC) ? e.record.val.macroAUROC.toFixed(3) : 'n/a'
            } (${e.record.seconds.toFixed(1)} s)`,
          );
        break;
      case 'cell-done':
        log(`[${e.id}] ${e.skipped ? 'already done (skipped)' : `done in ${e.seconds.toFixed(1)} s`}`);
        break;
    }
  };
  return { onEvent, stop: () => {} };
}

/**
 * Grid events as cli-progress bars: one for the grid's cells, one for the cell (or feature pass) in
 * progress. Made on the first event that needs them; gone once evaluation starts.
 */
function gridBars(): GridProgress {
  let multi: cliProgress.MultiBar | null = null;
  let bar: cliProgress.SingleBar | null = null;
  let cellBar: cliProgress.SingleBar | null = null;
  let total = 0;
  let done = 0;
  const stopAll = () => {
    multi?.stop();
    multi = null;
    bar = null;
    cellBar = null;
  };
  const ensure = (): cliProgress.MultiBar => {
    if (multi) return multi;
    multi = new cliProgress.MultiBar(
      {
        clearOnComplete: false,
        hideCursor: true,
        stream: process.stderr,
        format: ' {name} |{bar}| {value}/{total} {info}',
        barsize: 30,
      },
      cliProgress.Presets.shades_grey,
    );
    bar = multi.create(total || 1, done, { name: 'grid    ', info: '' });
    return multi;
  };
  const onEvent = (e: GridEvent) => {
    switch (e.kind) {
      case 'phase':
        if (e.name === 'plan') {
          total = e.detail ? e.detail.split(',').length : 0;
          ensure();
        } else if (e.name === 'evaluate' || e.name === 'report') stopAll();
        break;
      case 'features': {
        const m = ensure();
        if (!cellBar) cellBar = m.create(e.total, 0, { name: `features`, info: e.variant });
        cellBar.setTotal(e.total);
        cellBar.update(e.done, { info: e.variant });
        if (e.done === e.total) {
          m.remove(cellBar);
          cellBar = null;
        }
        break;
      }
      case 'cell-progress': {
        const p = e.progress;
        const m = ensure();
        const tot = p.epochs * p.steps;
        const val = (p.epoch - 1) * p.steps + p.step;
        if (!cellBar) cellBar = m.create(tot, val, { name: e.id.padEnd(8).slice(0, 16), info: '' });
        cellBar.setTotal(tot);
        cellBar.update(val, { info: `epoch ${p.epoch}/${p.epochs} loss ${p.loss?.toFixed(4) ?? ''}` });
        break;
      }
      case 'cell-done': {
        done++;
        const m = ensure();
        if (cellBar) {
          m.remove(cellBar);
          cellBar = null;
        }
        bar!.update(done, { info: e.id });
        break;
      }
    }
  };
  return { onEvent, stop: stopAll };
}

/** Progress bars for grid events (plain lines when stderr is not a TTY or --no-progress). */
export function progressReporter(plain = !process.stderr.isTTY): GridProgress {
  return plain ? gridLog() : gridBars();
}
