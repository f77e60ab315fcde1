/**
 * RFC-4180 record scanner for multi-GB CSVs. It reads large chunks into two reused buffers (the next
 * chunk is read while the current one is scanned) and finds field ends with Buffer.indexOf (memchr
 * speed). The caller says per column whether a field is kept
 * (bytes handed back), peeked (only "blank or nan?" is answered) or skipped. Skipped and peeked
 * fields are never decoded or copied, and are dropped from the buffer as the scan passes them, so
 * their size does not matter. Kept fields are held until the record ends, within maxFieldBytes and
 * maxRecordBytes. Past a cap the record is flagged (`oversize`) and the scan goes on.
 *
 * Semantics follow csv-parse as openCsv uses it (bom, relax_column_count, skip_empty_lines):
 * "" escapes, quoted commas/newlines, \n or \r\n line ends, a last line without a newline.
 * Lenient where csv-parse throws: a quote inside an unquoted field is kept as a literal.
 */

import { DataError } from '../common/errors.js';
import { type ByteSource, openBytes } from './chunks.js';

/** Per-column actions. */
export const SKIP = 0;
export const KEEP = 1;
/** Kept, and passed to `onKey` as soon as it ends; a false answer skips the rest of the record. */
export const KEY = 2;
/** Not kept; the record only says whether the cell is blank or "nan" (an empty mask). */
export const PEEK = 3;

/**
 * Says whether a record is wanted from its KEY cell: a function gets the cell as text (also stored as
 * `key`); an object's `bytes` gets the cell's bytes and no string is made (`key` stays undefined).
 */
export type KeyFilter = ((key: string) => boolean) | { bytes(key: Buffer): boolean };

export interface ScanLimits {
  /** Bytes read per fs call, and the initial buffer size. */
  chunkBytes: number;
  /** Largest kept field. */
  maxFieldBytes: number;
  /** Largest total of kept fields in one record. */
  maxRecordBytes: number;
}
export const DEFAULT_LIMITS: ScanLimits = {
  chunkBytes: 1 << 20,
  maxFieldBytes: 256 << 20,
  maxRecordBytes: 256 << 20,
};

/** A buffer held for a kept cell doubles up to this size, then is given one cap plus a chunk (grownSize). */
const DOUBLE_UP_TO = 16 << 20;

export interface ScannedRecord {
  /** 1-based data row (the header is row 0). */
  row: number;
  /** Byte range of the record in the (decompressed) data, line break included: what an offset index stores. */
  start: number;
  end: number;
  /** Number of fields in the record. */
  fields: number;
  /** Kept fields by column; views into the scan buffer, valid until the next call to `next`. */
  values: (Buffer | undefined)[];
  /** For PEEK columns: whether the cell was blank/"nan". */
  blank: boolean[];
  /** The KEY field as text (undefined when the record is shorter than the key column, or for a bytes filter). */
  key: string | undefined;
  /** The KEY field ended (and the filter, if any, was asked). */
  keyed: boolean;
  /** `onKey` said no: the fields after the key were skipped. */
  rejected: boolean;
  /** A kept field went past a cap: it and the later non-key fields were dropped. */
  oversize: DataError | null;
}

const START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const AFTER_QUOTE = 3;

const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;

/** Peek states: 0 blank so far, 1–3 matched "n","na","nan" (then only blanks), 4 not blank. */
const NOT_BLANK = 4;
function isSpace(b: number): boolean {
  return b === 32 || (b >= 9 && b <= 13);
}
function peekStep(state: number, buf: Uint8Array, s: number, e: number): number {
  for (let i = s; i < e && state !== NOT_BLANK; i++) {
    const b = buf[i] | 0x20; // lower-case letters; spaces are unaffected below
    if (isSpace(buf[i])) state = state === 0 || state === 3 ? state : NOT_BLANK;
    else if (b === 0x6e && (state === 0 || state === 2)) state++;
    else if (b === 0x61 && state === 1) state = 2;
    else state = NOT_BLANK;
  }
  return state;
}

/** Whether a cell is blank or "nan" after trimming (how CheXmask writes an empty mask). */
export function isBlankCell(b: Uint8Array): boolean {
  return peekStep(0, b, 0, b.length) !== NOT_BLANK;
}

function unescapeQuotes(v: Buffer): Buffer {
  const out = Buffer.allocUnsafe(v.length);
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    out[n++] = v[i];
    if (v[i] === QUOTE && v[i + 1] === QUOTE) i++;
  }
  return out.subarray(0, n);
}

/** The source of a scanner over bytes already in memory (nothing more to read). */
const IN_MEMORY: ByteSource = {
  totalBytes: 0,
  gzip: false,
  read: async () => 0,
  bytesRead: () => 0,
  close: async () => {},
};

export class CsvScanner {
  header: string[] = [];
  private buf: Buffer;
  private view: Buffer;
  /** Data offset of buf[0]. */
  private base = 0;
  private pos = 0;
  private end = 0;
  private eof = false;
  private started = false;
  /** Cached next ',' / '\n' at or after pos: -1 none before `end`, -2 unknown. */
  private nc = -2;
  private nn = -2;
  /** Records returned so far; the header is record 0. */
  private records = -1;

  // State of the record in progress; it survives buffer refills.
  private inRecord = false;
  private fi = 0;
  private phase = START;
  private mode = SKIP;
  private fs = 0;
  private qpos = 0;
  private esc = false;
  private dropped = 0;
  private droppedCR = false;
  private peek = 0;
  private held = 0;
  private viewCols: number[] = [];
  /**
   * Read-ahead: while the scan parses `buf`, the next chunk is read into `spare` at `aheadAt`, leaving
   * room before it for the unfinished record that the next fill carries over.
   */
  private spare: Buffer | null = null;
  private ahead: Promise<number> | null = null;
  private aheadAt = 0;
  private rec: ScannedRecord = {
    row: 0,
    start: 0,
    end: 0,
    fields: 0,
    values: [],
    blank: [],
    key: undefined,
    keyed: false,
    rejected: false,
    oversize: null,
  };

  private constructor(
    readonly file: string,
    private readonly src: ByteSource,
    private readonly limits: ScanLimits,
    private readonly onBytes?: (bytesRead: number, totalBytes: number) => void,
  ) {
    this.buf = Buffer.allocUnsafe(Math.max(16, limits.chunkBytes));
    this.view = this.buf.subarray(0, 0);
  }

  /** Opens `path` (plain or gzip) and reads its header row (trimmed names). */
  static async open(
    path: string,
    limits: Partial<ScanLimits> = {},
    onBytes?: (bytesRead: number, totalBytes: number) => void,
  ): Promise<CsvScanner> {
    const l: ScanLimits = {
      chunkBytes: limits.chunkBytes ?? DEFAULT_LIMITS.chunkBytes,
      maxFieldBytes: limits.maxFieldBytes ?? DEFAULT_LIMITS.maxFieldBytes,
      maxRecordBytes: limits.maxRecordBytes ?? DEFAULT_LIMITS.maxRecordBytes,
    };
    const sc = new CsvScanner(path, await openBytes(path), l, onBytes);
    try {
      const h = await sc.next(new Uint8Array(0), undefined, KEEP);
      if (!h) throw new DataError('bad-csv', 'file is empty (no header row)', { file: path });
      if (h.oversize) throw h.oversize;
      sc.header = h.values.map((v) => (v ? v.toString('utf8').trim() : ''));
      return sc;
    } catch (e) {
      await sc.close();
      throw e;
    }
  }

  /**
   * The fields of one record already in memory (an offset index cuts it out with `start`/`end`), read
   * as `next` reads them; null unless the bytes hold exactly one well-formed record.
   */
  static splitRecord(bytes: Buffer): string[] | null {
    const sc = new CsvScanner('', IN_MEMORY, { ...DEFAULT_LIMITS, chunkBytes: 0 });
    sc.buf = sc.view = bytes;
    sc.end = bytes.length;
    sc.started = sc.eof = true;
    const all = new Uint8Array(0);
    const read = () => (sc.step(all, undefined, KEEP) ? sc.rec : sc.finishAtEof(all, undefined, KEEP));
    try {
      const r = read();
      if (!r || r.oversize) return null;
      const fields = Array.from({ length: r.fields }, (_, i) => r.values[i]?.toString('utf8') ?? '');
      return read() ? null : fields;
    } catch (e) {
      if (e instanceof DataError) return null;
      throw e;
    }
  }

  get totalBytes(): number {
    return this.src.totalBytes;
  }
  bytesRead(): number {
    return this.src.bytesRead();
  }

  async close(): Promise<void> {
    await this.ahead?.catch(() => {});
    await this.src.close();
  }

  /**
   * The next record, or null at the end. `plan[i]` is the action for column i (columns past the
   * plan get `rest`). The returned object is reused by the next call.
   */
  async next(plan: Uint8Array, onKey?: KeyFilter, rest: number = SKIP): Promise<ScannedRecord | null> {
    for (;;) {
      if (this.step(plan, onKey, rest)) return this.rec;
      if (!(await this.fill())) return this.finishAtEof(plan, onKey, rest);
    }
  }

  /**
   * `next` without a promise when the record is already in the buffer: the record, or undefined when
   * a read is needed first (then call `next`, which goes on from where this stopped). A join over every
   * row saves a promise and a microtask per row.
   */
  nextBuffered(plan: Uint8Array, onKey?: KeyFilter, rest: number = SKIP): ScannedRecord | undefined {
    return this.step(plan, onKey, rest) ? this.rec : undefined;
  }

  private beginRecord(pos: number): void {
    const r = this.rec;
    r.start = this.base + pos;
    r.values.length = 0;
    r.blank.length = 0;
    r.key = undefined;
    r.keyed = false;
    r.rejected = false;
    r.oversize = null;
    this.viewCols.length = 0;
    this.held = 0;
    this.fi = 0;
    this.inRecord = true;
  }

  private fieldName(): string {
    return this.header[this.fi] ?? `column ${this.fi + 1}`;
  }

  private tooLarge(bytes: number, cap: number, what: string): void {
    this.rec.oversize ??= new DataError(
      'too-large',
      `${what} is over ${bytes} bytes, above the ${cap}-byte cap; the record's remaining cells were skipped`,
      { file: this.file, row: this.records + 1, field: this.fieldName() },
    );
    this.mode = SKIP;
  }

  /** Finishes the current field with content [s, e). */
  private endField(s: number, e: number, onKey: KeyFilter | undefined): void {
    const mode = this.mode;
    if (mode === SKIP) return;
    if (mode === PEEK) {
      this.rec.blank[this.fi] = peekStep(this.peek, this.buf, s, e) !== NOT_BLANK;
      return;
    }
    const len = e - s;
    if (len > this.limits.maxFieldBytes) {
      this.tooLarge(len, this.limits.maxFieldBytes, 'the cell');
      return;
    }
    if (this.held + len > this.limits.maxRecordBytes) {
      this.tooLarge(this.held + len, this.limits.maxRecordBytes, 'the record');
      return;
    }
    this.held += len;
    let v = this.buf.subarray(s, e);
    if (this.esc) v = unescapeQuotes(v);
    else this.viewCols.push(this.fi);
    this.rec.values[this.fi] = v;
    if (mode === KEY) {
      this.rec.keyed = true;
      if (typeof onKey === 'object') {
        if (!onKey.bytes(v)) this.rec.rejected = true;
      } else {
        const key = v.toString('utf8');
        this.rec.key = key;
        if (onKey && !onKey(key)) this.rec.rejected = true;
      }
    }
  }

  /** Ends the record at a line end; false for an empty line, which is not a record. */
  private endRecord(emptyLine: boolean, pos: number): boolean {
    this.inRecord = false;
    this.phase = START;
    if (emptyLine) return false;
    this.records++;
    this.rec.row = this.records;
    this.rec.end = this.base + pos;
    this.rec.fields = this.fi + 1;
    return true;
  }

  private startField(plan: Uint8Array, rest: number, pos: number): number {
    if (!this.inRecord) this.beginRecord(pos);
    let mode = this.fi < plan.length ? plan[this.fi] : rest;
    if ((this.rec.rejected || this.rec.oversize) && mode !== KEY) mode = SKIP;
    this.mode = mode;
    this.dropped = 0;
    this.droppedCR = false;
    this.peek = 0;
    this.esc = false;
    if (pos < this.end && this.buf[pos] === QUOTE) {
      this.phase = QUOTED;
      pos++;
    } else this.phase = UNQUOTED;
    this.fs = pos;
    return pos;
  }

  /**
   * Scans from pos; true when a record ended, false when the buffer ran out first. One state machine
   * (START → UNQUOTED | QUOTED → AFTER_QUOTE) kept whole in one loop on purpose: it runs once per field
   * of a multi-GB file, its state lives in locals between phases, and bench/join.ts measures it.
   */
  private step(plan: Uint8Array, onKey: KeyFilter | undefined, rest: number): boolean {
    const buf = this.buf;
    const view = this.view;
    const end = this.end;
    let pos = this.pos;
    for (;;) {
      if (this.phase === START) {
        if (pos >= end) break;
        pos = this.startField(plan, rest, pos);
      }
      if (this.phase === UNQUOTED) {
        let c = this.nc;
        if (c !== -1 && c < pos) c = this.nc = view.indexOf(COMMA, pos);
        let n = this.nn;
        if (n !== -1 && n < pos) n = this.nn = view.indexOf(LF, pos);
        const e = c === -1 ? n : n === -1 ? c : Math.min(c, n);
        if (e === -1) {
          pos = end;
          break;
        }
        if (e === n) {
          const cr = e > this.fs ? buf[e - 1] === CR : this.droppedCR;
          const ce = cr && e > this.fs ? e - 1 : e;
          this.endField(this.fs, ce, onKey);
          pos = e + 1;
          const empty = this.fi === 0 && this.dropped + (e - this.fs) - (cr ? 1 : 0) === 0;
          if (this.endRecord(empty, pos)) {
            this.pos = pos;
            return true;
          }
        } else {
          this.endField(this.fs, e, onKey);
          pos = e + 1;
          this.fi++;
          this.phase = START;
        }
        continue;
      }
      if (this.phase === QUOTED) {
        const q = view.indexOf(QUOTE, pos);
        if (q === -1) {
          pos = end;
          break;
        }
        this.qpos = q;
        pos = q + 1;
        this.phase = AFTER_QUOTE;
      }
      // AFTER_QUOTE: the byte after a quote says escape, field end, or record end.
      if (pos >= end) break;
      const b = buf[pos];
      if (b === QUOTE) {
        this.esc = true;
        pos++;
        this.phase = QUOTED;
        continue;
      }
      if (b === COMMA) {
        this.endField(this.fs, this.qpos, onKey);
        pos++;
        this.fi++;
        this.phase = START;
        continue;
      }
      if (b === CR && pos + 1 >= end && !this.eof) break; // need the next byte
      if (b === LF || (b === CR && (pos + 1 >= end || buf[pos + 1] === LF))) {
        this.endField(this.fs, this.qpos, onKey);
        pos += b === CR && pos + 1 < end ? 2 : 1;
        this.endRecord(false, pos);
        this.pos = pos;
        return true;
      }
      throw new DataError(
        'bad-csv',
        `malformed CSV: ${JSON.stringify(String.fromCharCode(b))} after the closing quote of a quoted field`,
        { file: this.file, row: this.records + 1, field: this.fieldName() },
      );
    }
    this.pos = pos;
    return false;
  }

  /** At the end of the data: finish a last record that has no line end. */
  private finishAtEof(plan: Uint8Array, onKey: KeyFilter | undefined, rest: number): ScannedRecord | null {
    if (!this.inRecord) return null;
    if (this.phase === QUOTED) {
      throw new DataError(
        'bad-csv',
        'the file ends inside a quoted field (truncated last row?); no closing quote',
        { file: this.file, row: this.records + 1, field: this.fieldName() },
      );
    }
    if (this.phase === START) {
      // A trailing comma: the last field is empty.
      this.startField(plan, rest, this.end);
      this.endField(this.end, this.end, onKey);
    } else if (this.phase === UNQUOTED) this.endField(this.fs, this.end, onKey);
    else this.endField(this.fs, this.qpos, onKey);
    const empty = this.fi === 0 && this.phase === UNQUOTED && this.dropped + this.end - this.fs === 0;
    return this.endRecord(empty, this.end) ? this.rec : null;
  }

  /**
   * Refills the buffer. Consumed bytes are dropped; only a kept field in progress is moved to the
   * front (the buffer grows for it, up to the caps). Kept fields already ended become copies.
   */
  private async fill(): Promise<boolean> {
    if (this.eof) return false;
    const buf = this.buf;
    const r = this.rec;
    if (this.inRecord) {
      for (const i of this.viewCols) {
        const v = r.values[i];
        if (v) r.values[i] = Buffer.from(v);
      }
      this.viewCols.length = 0;
    }
    const inField = this.inRecord && this.phase !== START;
    let keepFrom = this.pos;
    if (inField && (this.mode === KEEP || this.mode === KEY)) {
      const size = this.end - this.fs;
      const { maxFieldBytes, maxRecordBytes } = this.limits;
      if (size > maxFieldBytes) this.tooLarge(size, maxFieldBytes, 'the cell');
      else if (this.held + size > maxRecordBytes)
        this.tooLarge(this.held + size, maxRecordBytes, 'the record');
      else keepFrom = this.fs;
    }
    if (inField && keepFrom > this.fs) {
      // The field's start leaves the buffer: remember what a peek or an empty-line check needs.
      const s = this.fs;
      const e = this.phase === AFTER_QUOTE ? this.qpos : keepFrom;
      if (this.mode === PEEK) this.peek = peekStep(this.peek, buf, s, e);
      if (e > s) {
        this.dropped += e - s;
        this.droppedCR = buf[e - 1] === CR;
      }
    }
    if (this.ahead) return this.takeAhead(keepFrom);
    const shift = keepFrom;
    if (shift > 0) buf.copyWithin(0, shift, this.end);
    this.base += shift;
    this.end -= shift;
    this.pos -= shift;
    this.fs = Math.max(0, this.fs - shift);
    this.qpos = Math.max(0, this.qpos - shift);
    // Grow for a kept field in progress (never past one cap plus a chunk); shrink back after one.
    const chunkBytes = Math.max(16, this.limits.chunkBytes);
    let size = buf.length;
    if (size - this.end < size / 4) size = this.grownSize(size, size);
    else if (size > 2 * chunkBytes && this.end < chunkBytes / 4) size = chunkBytes;
    let b = buf;
    if (size !== buf.length) {
      b = Buffer.allocUnsafe(size);
      buf.copy(b, 0, 0, this.end);
      this.buf = b;
    }
    if (!this.started) {
      this.started = true;
      const n = await this.readMore();
      // A UTF-8 byte-order mark is not part of the first header name.
      if (n >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) {
        b.copyWithin(0, 3, this.end);
        this.base += 3;
        this.end -= 3;
        this.view = b.subarray(0, this.end);
      }
      if (n > 0) this.readAhead();
      return n > 0 || this.end > this.pos;
    }
    return (await this.readMore()) > 0;
  }

  /**
   * The size a buffer of `size` bytes grows to so that `need` bytes fit, for a kept cell in progress.
   * It doubles while small, so a growing cell is copied O(log n) times (linear time, not one copy per
   * chunk); past DOUBLE_UP_TO it goes straight to one cap plus a chunk, so a big cell is copied once
   * more instead of living in two large buffers at once. Pages past the cell are never written, so
   * they are not resident: the peak stays near the cell plus a chunk.
   */
  private grownSize(size: number, need: number): number {
    const most = this.limits.maxFieldBytes + Math.max(16, this.limits.chunkBytes);
    const doubled = Math.max(need, size * 2);
    return Math.max(need, size, Math.min(doubled > DOUBLE_UP_TO ? most : doubled, most));
  }

  /** Starts reading the next chunk into the spare buffer (the scan goes on with `buf` meanwhile). */
  private readAhead(): void {
    if (this.eof) return;
    const chunkBytes = Math.max(16, this.limits.chunkBytes);
    const head = chunkBytes >> 2;
    if (!this.spare || this.spare.length !== head + chunkBytes)
      this.spare = Buffer.allocUnsafe(head + chunkBytes);
    this.aheadAt = head;
    const p = this.src.read(this.spare, head, chunkBytes);
    // a failure is thrown by the fill that awaits it; none goes unhandled meanwhile
    p.catch(() => {});
    this.ahead = p;
  }

  /**
   * The fill when a chunk was read ahead: the bytes from `keepFrom` on (the unfinished record's held
   * part) are carried in front of the new chunk. A carry that fits the room before it is copied there
   * and the buffers swap; a larger one (a big kept cell) gets the chunk appended instead.
   */
  private async takeAhead(keepFrom: number): Promise<boolean> {
    const n = await (this.ahead as Promise<number>);
    this.ahead = null;
    const spare = this.spare as Buffer;
    const carry = this.end - keepFrom;
    let move: number; // how far every position moves (buffer index of the carried bytes' start)
    if (n === 0) this.eof = true;
    if (carry <= this.aheadAt) {
      move = this.aheadAt - carry;
      this.buf.copy(spare, move, keepFrom, this.end);
      this.spare = this.buf;
      this.buf = spare;
    } else {
      move = 0;
      const need = carry + n;
      let b = this.buf;
      if (b.length < need) b = Buffer.allocUnsafe(this.grownSize(b.length, need));
      this.buf.copy(b, 0, keepFrom, this.end); // overlapping when b is buf: copy moves like memmove
      spare.copy(b, carry, this.aheadAt, this.aheadAt + n);
      this.buf = b;
    }
    const shift = keepFrom - move;
    this.base += shift;
    this.pos -= shift;
    this.fs = Math.max(move, this.fs - shift);
    this.qpos = Math.max(move, this.qpos - shift);
    this.end = move + carry + n;
    this.view = this.buf.subarray(0, this.end);
    this.nc = -2;
    this.nn = -2;
    this.onBytes?.(this.src.bytesRead(), this.src.totalBytes);
    if (n > 0) this.readAhead();
    return n > 0;
  }

  private async readMore(): Promise<number> {
    const n = await this.src.read(this.buf, this.end, this.buf.length - this.end);
    if (n === 0) this.eof = true;
    this.end += n;
    this.view = this.buf.subarray(0, this.end);
    this.nc = -2;
    this.nn = -2;
    this.onBytes?.(this.src.bytesRead(), this.src.totalBytes);
    return n;
  }
}
