/** Every error class the library throws on purpose. Each message names the file, row, field or option it is about. */
/** Where bad data was found; the message starts with the same facts. */
export interface DataErrorWhere {
  file?: string;
  /** 1-based data row (header excluded) or line number, as the message says. */
  row?: number;
  field?: string;
  id?: string;
}

/**
 * Input data that cannot be used: a bad file, row, cell or image. `reason` is a short machine-readable
 * word (e.g. `bad-landmarks`, `unknown-id`); `where` says which file, row, id and field.
 */
export class DataError extends Error {
  readonly where: DataErrorWhere;
  readonly reason: string;
  constructor(reason: string, message: string, where: DataErrorWhere = {}) {
    super(`${formatWhere(where)}${message}`);
    this.name = 'DataError';
    this.reason = reason;
    this.where = where;
  }
}

export function formatWhere(w: DataErrorWhere): string {
  const parts: string[] = [];
  if (w.file) parts.push(w.file);
  if (w.row !== undefined) parts.push(`row ${w.row}`);
  if (w.id) parts.push(`id ${w.id}`);
  if (w.field) parts.push(`field "${w.field}"`);
  return parts.length ? `${parts.join(', ')}: ` : '';
}

/** A counter of reasons, kept in insertion order, with a few example messages per reason. */
export class ReasonCounter {
  readonly counts: Record<string, number> = {};
  readonly examples: Record<string, string[]> = {};
  constructor(private readonly maxExamples = 3) {}
  add(reason: string, example?: string, n = 1): void {
    this.counts[reason] = (this.counts[reason] ?? 0) + n;
    if (example !== undefined) {
      const ex = this.examples[reason] ?? [];
      this.examples[reason] = ex;
      if (ex.length < this.maxExamples) ex.push(example);
    }
  }
  get total(): number {
    let t = 0;
    for (const v of Object.values(this.counts)) t += v;
    return t;
  }
  toJSON(): { counts: Record<string, number>; examples: Record<string, string[]> } {
    return { counts: { ...this.counts }, examples: { ...this.examples } };
  }
}

/** A configuration (file, option or saved run) that cannot be used; the message names the field. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Misuse of the command line that the option parser cannot catch (the CLI's exit code 2). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A run stopped on request (StopSignal) at a step boundary; what was saved so far stays valid. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

/**
 * ERR_TORCH: LibTorch/TorchScript failed; ERR_INVALID_ARG: the input was refused; ERR_IO: a file could not
 * be written (full disk, quota, permissions; the message names the file and the errno); ERR_NATIVE: other.
 * Distributed (ts/model/process-group.ts): ERR_DIST_TIMEOUT a peer did not answer within the group's timeout,
 * ERR_DIST_PEER a peer closed its connection (e.g. it died), ERR_DIST_CLOSED the group was closed,
 * ERR_DIST_UNAVAILABLE the backend is not built in, ERR_DIST other c10d failures.
 */
export type NativeErrorCode =
  | 'ERR_TORCH'
  | 'ERR_INVALID_ARG'
  | 'ERR_IO'
  | 'ERR_NATIVE'
  | 'ERR_DIST'
  | 'ERR_DIST_TIMEOUT'
  | 'ERR_DIST_PEER'
  | 'ERR_DIST_CLOSED'
  | 'ERR_DIST_UNAVAILABLE';

/** What a failed native op rejects with; the addon is handed this class at load (ts/native.ts). */
export class NativeError extends Error {
  readonly code: NativeErrorCode;
  constructor(message: string, code: NativeErrorCode = 'ERR_NATIVE') {
    super(message);
    this.name = 'NativeError';
    this.code = code;
  }
}
