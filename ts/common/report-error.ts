/**
 * An error → one `error:` line on stderr and the exit code: the CLI's commands (cli/run-command.ts)
 * and the processes they start (the `--devices` cell workers) print and exit alike.
 */
import { ConfigError, DataError, InterruptedError, UsageError } from './errors.js';

/** Exit code of a run stopped on request (Ctrl-C, SIGTERM), as a shell's for SIGINT. */
export const EXIT_INTERRUPTED = 130;

// Option schemas parsed inside command bodies: raw zod errors, or the library's TypeError/RangeError
// naming the option (common/options.ts keeps the ZodError as `cause`).
const isZod = (err: Error) =>
  err.name === 'ZodError' || (err.cause as Error | undefined)?.name === 'ZodError';

/** 2 for what the user can fix (bad input data, config, options, usage), 130 for a stop, 1 for anything else. */
export function exitCodeOf(err: Error): number {
  if (err instanceof InterruptedError) return EXIT_INTERRUPTED;
  const userFixable =
    isZod(err) || err instanceof DataError || err instanceof ConfigError || err instanceof UsageError;
  return userFixable ? 2 : 1;
}

/** What reportError prints after `error: ` for `err` (not an InterruptedError). */
export function errorText(err: Error): string {
  // a raw ZodError's message is its issues as JSON: one `option: problem` per issue instead
  const issues = (err as { issues?: { path: PropertyKey[]; message: string }[] }).issues;
  const message =
    err.name === 'ZodError' && Array.isArray(issues)
      ? issues.map((i) => `${i.path.map(String).join('.') || '(options)'}: ${i.message}`).join('; ')
      : err.message;
  return isZod(err) ? `invalid option: ${message}` : message;
}

/**
 * Prints `err` as one line (`interrupted: …` with the resume command `hints.resume` names, or
 * `error: …`; the stack only under CXRMASK_DEBUG) and returns its exit code (exitCodeOf).
 */
export function reportError(err: Error, hints: { resume?: () => string | null } = {}): number {
  if (err instanceof InterruptedError) {
    const dir = hints.resume?.();
    process.stderr.write(
      `interrupted: ${err.message}.${dir ? ` Resume with: cxrmask run --resume ${dir}` : ''}\n`,
    );
    return exitCodeOf(err);
  }
  process.stderr.write(`error: ${errorText(err)}\n`);
  if (process.env['CXRMASK_DEBUG']) process.stderr.write(`${err.stack}\n`);
  return exitCodeOf(err);
}
