/** Command bodies' errors → one `error:` line and the exit code. */
import { ConfigError, DataError, InterruptedError } from '../common/errors.js';

/** Misuse of the command line that the option parser cannot catch (exit code 2). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * The one runner of every command body: one `error:` line, then the exit code — 2 for what the user
 * can fix (bad input data, config, options, usage), 130 for Ctrl-C, 1 for anything else.
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

function reportError(err: Error, hints: { resume?: () => string | null }): number {
  if (err instanceof InterruptedError) {
    const dir = hints.resume?.();
    process.stderr.write(
      `interrupted: ${err.message}.${dir ? ` Resume with: cxrmask run --resume ${dir}` : ''}\n`,
    );
    return 130;
  }
  // Option schemas parsed inside command bodies: raw zod errors, or the library's TypeError/RangeError
  // naming the option (ts/common/options.ts keeps the ZodError as `cause`).
  const zod = err.name === 'ZodError' || (err.cause as Error | undefined)?.name === 'ZodError';
  // a raw ZodError's message is its issues as JSON: one `option: problem` per issue instead
  const issues = (err as { issues?: { path: PropertyKey[]; message: string }[] }).issues;
  const message =
    err.name === 'ZodError' && Array.isArray(issues)
      ? issues.map((i) => `${i.path.map(String).join('.') || '(options)'}: ${i.message}`).join('; ')
      : err.message;
  process.stderr.write(`error: ${zod ? `invalid option: ${message}` : message}\n`);
  if (process.env['CXRMASK_DEBUG']) process.stderr.write(`${err.stack}\n`);
  const userFixable =
    zod || err instanceof DataError || err instanceof ConfigError || err instanceof UsageError;
  return userFixable ? 2 : 1;
}
