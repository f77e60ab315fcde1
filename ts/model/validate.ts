/** Argument checks done in TypeScript (sharp style): messages name the argument and what was expected. */

export function positiveInt(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

export function finiteNumber(v: unknown, name: string, { min = -Infinity } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
    throw new RangeError(
      `${name} must be a finite number${min > -Infinity ? ` >= ${min}` : ''}, got ${String(v)}`,
    );
  return v;
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

export function float32(v: unknown, name: string, length: number, shape: string): Float32Array {
  if (!(v instanceof Float32Array))
    throw new TypeError(`${name} must be a Float32Array ${shape}, got ${typeName(v)}`);
  if (v.length !== length)
    throw new RangeError(`${name} must hold ${length} values (${shape}), got ${v.length}`);
  return v;
}

export function bigint64(v: unknown, name: string, length: number, shape: string): BigInt64Array {
  if (!(v instanceof BigInt64Array))
    throw new TypeError(`${name} must be a BigInt64Array ${shape}, got ${typeName(v)}`);
  if (v.length !== length)
    throw new RangeError(`${name} must hold ${length} values (${shape}), got ${v.length}`);
  return v;
}

export function device(v: unknown): string {
  if (v === undefined) return 'auto';
  if (typeof v === 'string' && /^(cpu|cuda|auto|cuda:\d+)$/.test(v)) return v;
  throw new RangeError(`device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got ${String(v)}`);
}

/** Rejects misspelled option names (better-sqlite3 style). */
export function knownKeys(opts: object, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(opts))
    if (!allowed.includes(k))
      throw new TypeError(`unknown ${what} option '${k}' (known: ${allowed.join(', ')})`);
}

/**
 * Re-targets a native rejection onto a stack captured in JS before the call (sharp's trick). Pass an
 * Error made synchronously in the public method (before queueing) so the stack names the caller.
 */
export async function withJsStack<T>(p: Promise<T>, where: string | Error): Promise<T> {
  const holder = typeof where === 'string' ? new Error(where) : where;
  try {
    return await p;
  } catch (e) {
    if (e instanceof Error) {
      e.message = `${holder.message}: ${e.message}`;
      e.stack = `${e.name}: ${e.message}\n${(holder.stack ?? '').split('\n').slice(1).join('\n')}`;
    }
    throw e;
  }
}
