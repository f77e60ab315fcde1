/**
 * The ids a join wants, looked up from an id cell's bytes. A join over every CheXmask row did, per row,
 * a utf8 decode of the id, a trim and two Set/Map lookups with that fresh string (hash it, then chase
 * the stored key strings through memory): ≈ 12 % of the join. Here the ids' bytes sit in one arena and
 * an open-addressing table of their hashes points into it, so a lookup makes no string and touches the
 * table and one arena slice. Each id gets an index, which also carries the join's per-id state.
 * The match is the one `wanted.has(cell.trim())` gives: blanks trimmed the way String.prototype.trim
 * does (cells or ids with non-ASCII bytes take that exact string path).
 */

/** FNV-1a over bytes [s, e). */
function hashBytes(b: Uint8Array, s: number, e: number): number {
  let h = 0x811c9dc5;
  for (let i = s; i < e; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

function isBlank(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

export class WantedIds {
  /** The ids, by index. */
  readonly list: string[];
  private readonly arena: Uint8Array;
  /** Arena offsets: id k is arena[starts[k], starts[k + 1]). */
  private readonly starts: Uint32Array;
  /** Slot → id index, -1 empty. */
  private readonly table: Int32Array;
  private readonly mask: number;
  /** Ids with non-ASCII characters (never in the table). */
  private readonly other = new Map<string, number>();

  constructor(ids: Iterable<string>) {
    this.list = [...new Set(ids)];
    const n = this.list.length;
    let bytes = 0;
    for (const id of this.list) bytes += isAscii(id) ? id.length : 0;
    this.arena = Buffer.allocUnsafe(bytes);
    this.starts = new Uint32Array(n + 1);
    let size = 16;
    while (size < 2 * n) size *= 2;
    this.table = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    let at = 0;
    for (let k = 0; k < n; k++) {
      const id = this.list[k]!;
      this.starts[k] = at;
      if (!isAscii(id)) {
        this.other.set(id, k);
        this.starts[k + 1] = at;
        continue;
      }
      at += (this.arena as Buffer).write(id, at, 'latin1');
      this.starts[k + 1] = at;
      let slot = hashBytes(this.arena, this.starts[k]!, at) & this.mask;
      while (this.table[slot] !== -1) slot = (slot + 1) & this.mask;
      this.table[slot] = k;
    }
  }

  get size(): number {
    return this.list.length;
  }

  /** The index of the id a cell holds (blanks around it trimmed), or -1 when it is not wanted. */
  find(cell: Uint8Array): number {
    let s = 0;
    let e = cell.length;
    while (s < e && isBlank(cell[s]!)) s++;
    while (e > s && isBlank(cell[e - 1]!)) e--;
    for (let i = s; i < e; i++) {
      if (cell[i]! > 0x7f) {
        return this.findText(Buffer.from(cell.buffer, cell.byteOffset, cell.length).toString('utf8'));
      }
    }
    return this.probe(cell, s, e);
  }

  /** The index of `text.trim()`, or -1. */
  findText(text: string): number {
    const id = text.trim();
    if (!isAscii(id)) return this.other.get(id) ?? -1;
    const b = Buffer.from(id, 'latin1');
    return this.probe(b, 0, b.length);
  }

  private probe(b: Uint8Array, s: number, e: number): number {
    const len = e - s;
    let slot = hashBytes(b, s, e) & this.mask;
    for (;;) {
      const k = this.table[slot]!;
      if (k === -1) return -1;
      const a = this.starts[k]!;
      if (this.starts[k + 1]! - a === len) {
        let i = 0;
        while (i < len && this.arena[a + i] === b[s + i]) i++;
        if (i === len) return k;
      }
      slot = (slot + 1) & this.mask;
    }
  }
}
