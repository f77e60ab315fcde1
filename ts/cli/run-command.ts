/** Command bodies' errors → one `error:` line and the exit code. */
import { reportError } from '../common/report-error.js';

/**
 * The one runner of every command body: one `error:` line, then the exit code — 2 for what the user
 * can fix (bad input data, config, options, usage), 130 for Ctrl-C, 1 for anything else
 * (common/report-error.ts, shared with the `--devices` cell workers).
 */
export async function runCommand(
  body: () => Promise<void>,
  hints: { resume?: () => string | null } = {},
): Promise<void> {
  try {
    await body();
  } catch (e) {
    process.exitCode = reportError(e as Error, hints);
  }
}
