/** Errors of the data layer. Every message names the file, the row and the field it is about. */
export interface DataErrorWhere {
  file?: string;
  /** 1-based data row (header excluded) or line number, as the message says. */
  row?: number;
  field?: string;
  id?: string;
}

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
