/**
 * Re-targets a native rejection onto a stack captured in JS before the call (sharp's trick). Pass an
 * Error made synchronously in the public method (before queueing) so the stack names the caller.
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
      if (prefix) e.message = `${holder.message}: ${e.message}`;
      e.stack = `${e.name}: ${e.message}\n${(holder.stack ?? '').split('\n').slice(1).join('\n')}`;
    }
    throw e;
  }
}
