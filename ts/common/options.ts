/**
 * The one validation vocabulary of the library's boundary: zod schemas, and the two ways a failed
 * parse becomes an error that names what was wrong.
 * - `parseOptions` for an option object (`unknown buildCache option 'shardSze'`, `preprocess option
 *   'size': …`);
 * - `checkArg` for one named value, a positional argument (`n must be a positive integer, got 0`).
 * Both throw a TypeError for a wrong type or an unknown key and a RangeError for a value out of range,
 * never a raw ZodError (it stays as `cause`). The schema pieces below fail with `must be …, got …`,
 * prefixed with the field's name wherever they are used.
 */
import { z } from 'zod';

const RANGE_CODES = new Set(['too_small', 'too_big', 'invalid_value', 'invalid_format', 'not_multiple_of']);

type Issue = z.core.$ZodIssue;

/** A piece's failure says whether the value had the wrong type or was out of range. */
type Kind = 'type' | 'range';

function isRange(issue: Issue): boolean {
  if (issue.code === 'custom') return (issue.params as { kind?: Kind } | undefined)?.kind === 'range';
  return RANGE_CODES.has(issue.code);
}

/** Our pieces' messages start with `must`: the field's name goes in front of them. */
function isPiece(issue: Issue): boolean {
  return issue.code === 'custom' && (issue.params as { kind?: Kind } | undefined)?.kind !== undefined;
}

function fail(message: string, issue: Issue, cause: z.ZodError): never {
  throw isRange(issue) ? new RangeError(message, { cause }) : new TypeError(message, { cause });
}

/** The option names an object schema knows, for the message about a misspelled one. */
function knownKeys(schema: z.ZodType): string[] | null {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : null;
}

/** The first zod issue of `value` against `schema` and its dotted field path, or the parsed value. */
export function firstIssue<S extends z.ZodType>(
  schema: S,
  value: unknown,
):
  | { ok: true; data: z.output<S> }
  | { ok: false; field: string; issue: z.core.$ZodIssue; error: z.ZodError } {
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, data: r.data };
  const issue = r.error.issues[0]!;
  return { ok: false, field: issue.path.map(String).join('.'), issue, error: r.error };
}

/**
 * An option object parsed with its schema (defaults filled in). `what` names the entry point in the
 * message: `unknown <what> option 'k'`, `<what> option '<path>': <problem>`.
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = firstIssue(schema, input);
  if (r.ok) return r.data;
  const { issue, field: at } = r;
  if (issue.code === 'unrecognized_keys') {
    const names = issue.keys.map((k) => `'${at ? `${at}.` : ''}${k}'`).join(', ');
    const known = at ? null : knownKeys(schema);
    throw new TypeError(`unknown ${what} option ${names}${known ? ` (known: ${known.join(', ')})` : ''}`, {
      cause: r.error,
    });
  }
  const problem = isPiece(issue) ? `${at} ${issue.message}` : issue.message;
  return fail(`${what} option '${at || '(options)'}': ${problem}`, issue, r.error);
}

/** One named value (a positional argument) checked with a schema: `<name> must be …, got …`. */
export function checkArg<S extends z.ZodType>(schema: S, value: unknown, name: string): z.output<S> {
  const r = firstIssue(schema, value);
  if (r.ok) return r.data;
  return fail(`${name} ${r.issue.message}`, r.issue, r.error);
}

/** Human-readable list of zod issues, one per line: `  - path.to.field: message`. */
export function formatIssues(err: z.ZodError): string {
  return err.issues.map((i) => `  - ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('\n');
}

/** A value's type for messages: `null`, the class name of an object, else `typeof`. */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

/**
 * An option that may be left out (undefined, or null as `??` reads it): `fallback` (or what it returns,
 * read at each parse) stands in, then `schema` checks the value.
 */
export function or<T>(schema: z.ZodType<T, T>, fallback: T | (() => T)) {
  return z.preprocess(
    (v) => v ?? (typeof fallback === 'function' ? (fallback as () => T)() : fallback),
    schema,
  );
}

/** A schema piece: `test` passes or the issue says `must be <expected>, got <what the value was>`. */
export function rule<T>(
  test: (v: unknown) => boolean,
  problem: (v: unknown) => string,
  kind: Kind = 'range',
): z.ZodType<T, T> {
  return z.custom<T>(test, { error: (iss) => problem(iss.input), params: { kind } });
}

const got = (v: unknown) => String(v);

export const positiveInt = rule<number>(
  (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1,
  (v) => `must be a positive integer, got ${got(v)}`,
);

/** An integer from `lo` to `hi` (inclusive). */
export const intInRange = (lo: number, hi: number) =>
  rule<number>(
    (v) => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi,
    (v) => `must be an integer from ${lo} to ${hi}, got ${got(v)}`,
  );

/** The largest size or count the addon takes (native/js_objects.h kMaxCount: int32's range). */
export const MAX_NATIVE_COUNT = 2 ** 31 - 1;

/** A size or count handed to the addon (a label count, a feature width, a batch). */
export const positiveCount = intInRange(1, MAX_NATIVE_COUNT);

export const nonNegativeInt = rule<number>(
  (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0,
  (v) => `must be a non-negative integer, got ${got(v)}`,
);

export const finiteNumber = rule<number>(
  (v) => typeof v === 'number' && Number.isFinite(v),
  (v) => `must be a finite number, got ${got(v)}`,
);

export const nonNegativeNumber = rule<number>(
  (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0,
  (v) => `must be a finite number >= 0, got ${got(v)}`,
);

/** An open interval (lo, hi) of finite numbers. */
export const between = (lo: number, hi: number) =>
  rule<number>(
    (v) => typeof v === 'number' && v > lo && v < hi,
    (v) => `must be in (${lo}, ${hi}), got ${got(v)}`,
  );

export const nonEmptyString = rule<string>(
  (v) => typeof v === 'string' && v !== '',
  () => 'must be a non-empty string',
  'type',
);

/** A device name: 'cpu', 'cuda', 'cuda:N' or 'auto'. */
export const deviceName = rule<string>(
  (v) => typeof v === 'string' && /^(cpu|cuda|auto|cuda:\d+)$/.test(v),
  (v) => `must be 'cpu', 'cuda', 'cuda:N' or 'auto', got ${got(v)}`,
);

/** One of `values`. */
export const oneOf = <T extends string>(values: readonly T[]) =>
  rule<T>(
    (v) => values.includes(v as T),
    (v) => `must be one of ${values.join(', ')}, got ${got(v)}`,
  );

/** A boolean, nothing else (`'yes'`, 1 and the like are refused). */
export const aBoolean = rule<boolean>(
  (v) => typeof v === 'boolean',
  (v) => `must be a boolean, got ${typeof v === 'string' ? `'${v}'` : typeName(v)}`,
  'type',
);

/**
 * A boolean option, off when left out (undefined or null). Anything else is refused: a flag that read
 * every non-`true` value as off made `{ weightsOnly: 'yes' }` save the full state without a word.
 */
export const flag = or(aBoolean, false);

type TypedArray = Float32Array | BigInt64Array | Uint8Array;
type TypedArrayClass<A extends TypedArray> = { new (n: number): A; name: string };

/** Built typed-array schemas by class, length and shape: the model checks every batch with one. */
const typedArraySchemas = new Map<string, z.ZodType>();
const MAX_TYPED_ARRAY_SCHEMAS = 64;

/** A typed array of `length` values, `shape` in words (`[n,3,S,S]`). */
export function typedArray<A extends TypedArray>(
  Class: TypedArrayClass<A>,
  length: number,
  shape: string,
): z.ZodType<A, A> {
  const key = `${Class.name}:${length}:${shape}`;
  const known = typedArraySchemas.get(key);
  if (known) return known as z.ZodType<A, A>;
  const schema = rule<A>(
    (v) => v instanceof Class,
    (v) => `must be a ${Class.name} ${shape}, got ${typeName(v)}`,
    'type',
  ).refine((v) => v.length === length, {
    error: (iss) => `must hold ${length} values (${shape}), got ${(iss.input as A).length}`,
    params: { kind: 'range' },
  });
  if (typedArraySchemas.size >= MAX_TYPED_ARRAY_SCHEMAS) typedArraySchemas.clear();
  typedArraySchemas.set(key, schema);
  return schema;
}
