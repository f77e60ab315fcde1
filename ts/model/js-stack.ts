import { NativeError } from '../common/errors.js';

/**
 * Re-targets a native rejection onto a stack captured in JS before the call (sharp's trick). Pass an
 * Error made synchronously in the public method (before queueing) so the stack names the caller.
 * A NativeError (or any error without frames of its own) gets the caller's frames in place of its
 * stack: made in native code, it has no JS frames worth keeping. Any other error (a TypeError, a
 * DataError, a bug in our own code) keeps its frames, which point where it was thrown, and the
 * caller's follow them after a line `    at <caller> (called from)`.
 * The message is prefixed with the holder's (`Classifier.save: …`) unless `prefix: false`: a call
 * whose errors already say what failed (a DataError starts with its file) keeps them as they are.
 */
export async function withJsStack<T>(
  p: Promise<T>,
  where: string | Error,
  { prefix = true }: { prefix?: boolean } = {},
): Promise<T> {
  const holder = typeof where === 'string' ? new Error(where) : where;
  try {
    return await p;
  } catch (e) {
    if (e instanceof Error) {
      const at = e instanceof NativeError ? -1 : (e.stack ?? '').search(/\n\s+at /);
      const own = at < 0 ? '' : `${e.stack!.slice(at + 1)}\n    at <caller> (called from)\n`;
      if (prefix) e.message = `${holder.message}: ${e.message}`;
      e.stack = `${e.name}: ${e.message}\n${own}${(holder.stack ?? '').split('\n').slice(1).join('\n')}`;
    }
    throw e;
  }
}
