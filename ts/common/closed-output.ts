/**
 * stdout/stderr whose reader went away (`| head`, a log shipper that restarted, a supervisor's closed
 * pipe): a long run or a service goes on without its log instead of dying on the first write (Node
 * ends the process on an 'error' event no one listens to).
 */

type Output = NodeJS.WriteStream;

const modes = new WeakMap<Output, { anyError: boolean }>();

/**
 * From now on, a broken pipe (EPIPE) on stdout or stderr drops that stream's later output instead of
 * ending the process. `anyError` drops it on any write error too (a process whose terminal may be
 * gone); otherwise other errors (a full disk under `> file`) still end the process, as a truncated
 * result must not pass for a whole one. Calling it again only widens what is tolerated.
 */
export function dropOutputWhenClosed(
  options: { anyError?: boolean } = {},
  streams: Output[] = [process.stdout, process.stderr],
): void {
  for (const s of streams) {
    const known = modes.get(s);
    if (known) {
      known.anyError ||= options.anyError === true;
      continue;
    }
    const mode = { anyError: options.anyError === true };
    modes.set(s, mode);
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && !mode.anyError) throw e;
      // every later write would fail the same way: drop them, still calling their callbacks
      s.write = ((_chunk: unknown, encoding?: unknown, callback?: unknown) => {
        const done = typeof encoding === 'function' ? encoding : callback;
        if (typeof done === 'function') process.nextTick(done as () => void);
        return true;
      }) as Output['write'];
    });
  }
}
