/**
 * Repeated keys in a dataset's tables (the same image, study or split line twice). An identical repeat
 * is counted and skipped, so an image never enters the index twice; a repeat that disagrees is an
 * error naming both rows and the first field that differs, because either row could be the right one.
 */
import { DataError, type ReasonCounter } from '../common/errors.js';

/** One table's rows by key: the first row number and the cells that matter, joined. */
export class DuplicateRows {
  private readonly first = new Map<string, { row: number; cells: string }>();
  /** `counter` gets the identical repeats, under the file's name. */
  constructor(
    private readonly file: string,
    private readonly keyName: string,
    private readonly fields: readonly string[],
    private readonly counter: ReasonCounter,
  ) {}

  /**
   * true for the first row of `key`; false for an identical repeat (counted under the file's name).
   * @throws {DataError} `conflicting-duplicate`, naming the file, both rows, the key and the field.
   */
  take(key: string, row: number, cells: readonly string[]): boolean {
    const joined = cells.join('\u001f');
    const seen = this.first.get(key);
    if (!seen) {
      this.first.set(key, { row, cells: joined });
      return true;
    }
    if (seen.cells === joined) {
      this.counter.add(
        this.file,
        `${this.file}, row ${row} repeats row ${seen.row} (${this.keyName} ${key})`,
      );
      return false;
    }
    const before = seen.cells.split('\u001f');
    const k = cells.findIndex((c, i) => c !== before[i]);
    const field = this.fields[k] ?? `#${k}`;
    throw new DataError(
      'conflicting-duplicate',
      `rows ${seen.row} and ${row} both give ${this.keyName} ${key} but disagree on "${field}" ("${before[k]}" vs "${cells[k]}"); remove one of them`,
      { file: this.file, row, id: key, field },
    );
  }
}
