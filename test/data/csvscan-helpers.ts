/** Scanner test helpers: read a whole file with the scanner, and the csv-parse reading it must match. */
import { parse } from 'csv-parse/sync';
import { CsvScanner, KEEP, type ScanLimits } from '../../ts/data/csvscan.js';

/** Every record, every field kept, as strings (header first). */
export async function scanAll(path: string, limits: Partial<ScanLimits> = {}): Promise<string[][]> {
  const sc = await CsvScanner.open(path, limits);
  const out = [sc.header];
  try {
    for (;;) {
      const r = await sc.next(new Uint8Array(0), undefined, KEEP);
      if (!r) break;
      out.push(r.values.map((v) => (v ? v.toString('utf8') : '')));
    }
  } finally {
    await sc.close();
  }
  return out;
}

/** What openCsv's csv-parse settings make of the same text (header trimmed like openCsv). */
export function csvParse(text: string): string[][] {
  const recs = parse(text, { bom: true, relax_column_count: true, skip_empty_lines: true }) as string[][];
  if (recs.length) recs[0] = recs[0].map((h) => h.trim());
  return recs;
}
