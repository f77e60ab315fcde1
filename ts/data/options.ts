/**
 * Option objects of the data layer's public entry points, parsed with their zod schema: a library
 * caller gets a TypeError (unknown option, wrong type) or RangeError (value out of range) naming the
 * option, not a raw ZodError. The ZodError stays as `cause`.
 */
import type { z } from 'zod';

const RANGE_CODES = new Set(['too_small', 'too_big', 'invalid_value', 'invalid_format', 'not_multiple_of']);

export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const at = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const names = issue.keys.map((k) => `'${at ? `${at}.` : ''}${k}'`).join(', ');
    throw new TypeError(`unknown ${what} option ${names}`, { cause: r.error });
  }
  const message = `${what} option '${at || '(options)'}': ${issue.message}`;
  throw RANGE_CODES.has(issue.code)
    ? new RangeError(message, { cause: r.error })
    : new TypeError(message, { cause: r.error });
}
