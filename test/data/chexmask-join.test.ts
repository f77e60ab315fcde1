/**
 * The chunked CheXmask join against the csv-parse join it replaced (kept here as the oracle):
 * same rows, same summary, on the synthetic tree and on hand-shaped files (quoting, CRLF, column
 * order, missing columns, truncated last row, gzip, tiny chunks).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError, ReasonCounter } from '../../ts/common/errors.js';
import { mulberry32 } from '../../ts/common/random.js';
import {
  CHEXMASK_COLUMNS,
  CHEXMASK_ID_COLUMNS,
  type ChexmaskRow,
  diceOf,
  type JoinOptions,
  joinChexmask,
  parseChexmaskRecord,
} from '../../ts/data/chexmask.js';
import { openCsv } from '../../ts/data/csv.js';
import { formatLandmarksFlat, formatLandmarksNumpy, REGIONS, type Region } from '../../ts/data/landmarks.js';
import { encodeRle } from '../../ts/data/rle.js';
import { rejects, synthTree, tempDir } from './helpers.js';

/** The previous joinChexmask (csv-parse, every cell a string), minus progress: the reference. */
async function oracleJoin(csvPath: string, ids: Iterable<string>, o: JoinOptions = {}) {
  const minDice = o.minDice ?? 0.7;
  const wanted = new Set(ids);
  const probe = await openCsv(csvPath);
  const idColumn = o.idColumn ?? CHEXMASK_ID_COLUMNS.find((c) => probe.header.includes(c)) ?? 'dicom_id';
  for await (const _ of probe.records) break;
  const required = [
    idColumn,
    ...Object.values(CHEXMASK_COLUMNS).filter((c) => c !== CHEXMASK_COLUMNS.diceMax),
  ];
  const csv = await openCsv(csvPath, required);
  const idIdx = csv.col(idColumn);
  const rows = new Map<string, ChexmaskRow>();
  const refused = new ReasonCounter();
  const emptyMaskCells: Record<Region, number> = { rightLung: 0, leftLung: 0, heart: 0 };
  const matchedIds = new Set<string>();
  // The duplicate-id rule: an id's row is its first row whose Dice passes minDice (kept or not).
  const claimed = new Set<string>();
  let [rowsRead, matched, sumM, nM, sumK] = [0, 0, 0, 0, 0];
  const diceIdx = csv.header.indexOf(CHEXMASK_COLUMNS.diceMean);
  for await (const { row, values } of csv.records) {
    rowsRead++;
    if (o.stopEarly && claimed.size === wanted.size) break;
    const id = (values[idIdx] ?? '').trim();
    if (!wanted.has(id)) continue;
    matched++;
    matchedIds.add(id);
    if (claimed.has(id)) {
      refused.add(
        'duplicate',
        `${csvPath}, row ${row}, id ${id}: duplicate row (an earlier row of this id passed the Dice threshold)`,
      );
      continue;
    }
    const dice = diceOf(values[diceIdx]);
    if (dice >= minDice) claimed.add(id);
    if (values.length !== csv.header.length) {
      refused.add(
        'bad-row',
        `${csvPath}, row ${row}, id ${id}: ${values.length} cells, header has ${csv.header.length}`,
      );
      continue;
    }
    const rec: Record<string, string> = {};
    for (const c of csv.header) rec[c] = values[csv.header.indexOf(c)];
    if (!Number.isNaN(dice)) {
      sumM += dice;
      nM++;
    }
    if (dice < minDice) {
      refused.add('low-dice', `${csvPath}, row ${row}, id ${id}: Dice RCA (Mean) ${dice} < ${minDice}`);
      continue;
    }
    try {
      const keepRle = o.keepRle ?? o.source === 'rle';
      const validateRle = o.validateRle ?? o.source !== 'landmarks';
      const r = parseChexmaskRecord(rec, { keepRle, validateRle, idColumn }, { file: csvPath, row, id });
      for (const e of r.emptyMasks) emptyMaskCells[e]++;
      rows.set(id, r);
      sumK += r.diceMean;
    } catch (e) {
      if (e instanceof DataError) refused.add(e.reason, e.message);
      else throw e;
    }
  }
  const missingExamples = [...wanted].filter((id) => !matchedIds.has(id));
  return {
    rows,
    summary: {
      file: csvPath,
      idColumn,
      minDice,
      rowsRead,
      matched,
      kept: rows.size,
      missing: missingExamples.length,
      missingExamples: missingExamples.slice(0, 5),
      refused: refused.toJSON(),
      emptyMaskCells,
      diceMeanOfMatched: nM ? sumM / nM : null,
      diceMeanOfKept: rows.size ? sumK / rows.size : null,
    },
  };
}

async function same(csv: string, ids: Iterable<string>, o: JoinOptions = {}): Promise<void> {
  const idList = [...ids];
  const want = await oracleJoin(csv, idList, o);
  for (const chunkBytes of [undefined, 37, 4096]) {
    const got = await joinChexmask(csv, idList, { ...o, ...(chunkBytes ? { chunkBytes } : {}) });
    assert.equal(got.summary, want.summary, `summary, chunkBytes ${chunkBytes}`);
    assert.equal([...got.rows.keys()], [...want.rows.keys()]);
    for (const [id, r] of want.rows) {
      const g = got.rows.get(id) as ChexmaskRow;
      assert.equal(
        { ...g, landmarks: Array.from(g.landmarks) },
        { ...r, landmarks: Array.from(r.landmarks) },
      );
    }
  }
}

test('synthetic tree: identical rows and summary (all ids, some ids, stopEarly, minDice 0, keepRle)', async () => {
  const s = await synthTree();
  const ids = s.images.map((im) => im.dicomId);
  await same(s.chexmaskCsv, ids);
  await same(s.chexmaskCsv, ids.filter((_, i) => i % 3 === 0).concat(['absent-id']), { minDice: 0 });
  await same(s.chexmaskCsv, [ids[5], ids[9]], { stopEarly: true });
  await same(s.chexmaskCsv, ids.slice(0, 40), { keepRle: true });
});

const HEADER = [
  'dicom_id',
  'Dice RCA (Mean)',
  'Dice RCA (Max)',
  'Landmarks',
  'Left Lung',
  'Right Lung',
  'Heart',
  'Height',
  'Width',
];

/** A CheXmask-shaped file with small real masks and a sprinkle of every kind of bad row. */
function shapedCsv(o: { seed: number; n: number; order?: string[]; crlf?: boolean; quoteAll?: boolean }): {
  text: string;
  ids: string[];
} {
  const rnd = mulberry32(o.seed);
  const order = o.order ?? HEADER;
  const ids: string[] = [];
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const cellText = (s: string) => (o.quoteAll || /[",\n\r]/.test(s) ? q(s) : s);
  const lines = [order.map(cellText).join(',')];
  for (let i = 0; i < o.n; i++) {
    const h = 6 + Math.floor(rnd() * 10);
    const w = 6 + Math.floor(rnd() * 10);
    const mask = () => {
      const m = new Uint8Array(h * w);
      for (let j = 0; j < m.length; j++) m[j] = rnd() < 0.3 ? 1 : 0;
      return encodeRle(m, h, w);
    };
    const lm = Array.from({ length: 240 }, () => Math.round(rnd() * 40 - 5));
    const id = `id-${o.seed}-${i}`;
    ids.push(id);
    const cell: Record<string, string> = {
      dicom_id: rnd() < 0.03 ? ids[Math.floor(rnd() * ids.length)] : id,
      'Dice RCA (Mean)': (0.5 + rnd() * 0.45).toFixed(4),
      'Dice RCA (Max)': (0.6 + rnd() * 0.4).toFixed(4),
      Landmarks: rnd() < 0.5 ? formatLandmarksNumpy(lm) : formatLandmarksFlat(lm),
      'Left Lung': mask(),
      'Right Lung': rnd() < 0.05 ? '' : mask(),
      Heart: rnd() < 0.05 ? 'nan' : mask(),
      Height: String(h),
      Width: String(w),
    };
    const bad = rnd();
    if (bad < 0.03) cell['Left Lung'] += ' 7';
    else if (bad < 0.06) cell.Heart = `${h * w} 5`;
    else if (bad < 0.08) cell.Landmarks = '[[1 2]]';
    else if (bad < 0.1) cell.Height = 'x';
    else if (bad < 0.12) cell['Dice RCA (Mean)'] = '';
    else if (bad < 0.14) cell.Landmarks = `he said ""${cell.Landmarks}""`;
    let line = order.map((c) => cellText(cell[c] ?? '')).join(',');
    if (rnd() < 0.03) line = line.split(',').slice(0, 4).join(','); // short row (may cut a quote)
    if (line.split('"').length % 2 === 0) line += '"';
    lines.push(line);
  }
  return { text: lines.join(o.crlf ? '\r\n' : '\n') + (o.crlf ? '\r\n' : '\n'), ids };
}

const dir = tempDir();
let nfile = 0;
function write(text: string | Buffer, ext = '.csv'): string {
  const p = join(dir, `cm${nfile++}${ext}`);
  writeFileSync(p, text);
  return p;
}

test('shaped files: quoting, CRLF, unusual column order, gzip — identical to the oracle', async () => {
  const shuffled = [
    'Heart',
    'Width',
    'Landmarks',
    'dicom_id',
    'Left Lung',
    'Height',
    'Dice RCA (Mean)',
    'Right Lung',
    'Dice RCA (Max)',
  ];
  const variants = [
    { seed: 1, n: 120 },
    { seed: 2, n: 80, crlf: true },
    { seed: 3, n: 80, quoteAll: true },
    { seed: 4, n: 80, order: shuffled, crlf: true },
    { seed: 5, n: 60, order: HEADER.filter((c) => c !== 'Dice RCA (Max)') },
  ];
  for (const v of variants) {
    const { text, ids } = shapedCsv(v);
    const p = write(text);
    const wanted = ids.filter((_, i) => i % 4 !== 1).concat(['nobody']);
    await same(p, wanted);
    await same(p, wanted, { source: 'landmarks' });
    await same(p, wanted, { source: 'rle', minDice: 0.55 });
    await same(write(gzipSync(text), '.csv.gz'), wanted);
  }
});

/**
 * Rows shaped like CheXmask's MIMIC-CXR-JPG file: 1024² grid, RLE cells rasterized from the landmark
 * polygons (hundreds of runs each), full-precision Dice cells, blank cells, numbers that only the
 * checked path reads ("+1024", "1024.0"), and duplicate ids with a low first row.
 */
function realShapedCsv(n: number, seed: number): { text: string; ids: string[] } {
  const rnd = mulberry32(seed);
  const lines = [HEADER.join(',')];
  const ids: string[] = [];
  const polygon = (count: number, cx: number, cy: number, rx: number, ry: number) =>
    Array.from({ length: count }, (_, i) => {
      const a = (2 * Math.PI * i) / count;
      return [Math.round(cx + rx * Math.cos(a)), Math.round(cy + ry * Math.sin(a))];
    }).flat();
  const rle = (pts: number[]) => {
    const mask = new Uint8Array(1024 * 1024);
    const k = pts.length / 2;
    for (let y = 0; y < 1024; y++) {
      const xs: number[] = [];
      for (let i = 0; i < k; i++) {
        const [x0, y0, x1, y1] = [
          pts[2 * i],
          pts[2 * i + 1],
          pts[(2 * i + 2) % pts.length],
          pts[(2 * i + 3) % pts.length],
        ];
        if (y0 <= y !== y1 <= y) xs.push(x0 + ((y - y0) * (x1 - x0)) / (y1 - y0));
      }
      xs.sort((a, b) => a - b);
      for (let j = 0; j + 1 < xs.length; j += 2)
        mask.fill(1, y * 1024 + Math.round(xs[j]), y * 1024 + Math.round(xs[j + 1]) + 1);
    }
    return encodeRle(mask, 1024, 1024);
  };
  for (let i = 0; i < n; i++) {
    const dup = i > 3 && rnd() < 0.15;
    const id = dup
      ? ids[Math.floor(rnd() * ids.length)]
      : `${(i * 2654435761) >>> 0}-${i.toString(16).padStart(8, '0')}`;
    if (!dup) ids.push(id);
    const s = 0.9 + rnd() * 0.2;
    const rl = polygon(44, 300 * s, 450, 165 * s, 330 * s);
    const ll = polygon(50, 710 * s, 450, 160 * s, 335 * s);
    const ht = polygon(26, 560 * s, 640, 150 * s, 150 * s);
    const dice = rnd() < 0.2 ? 0.5 + rnd() * 0.2 : 0.7 + rnd() * 0.29;
    const size = (v: string) =>
      rnd() < 0.05 ? '+1024' : rnd() < 0.05 ? '1024.0' : rnd() < 0.05 ? ` ${v} ` : v;
    const cells = [
      id,
      rnd() < 0.03 ? '' : String(dice),
      rnd() < 0.05 ? '' : String(Math.min(1, dice + rnd() * 0.05)),
      `"${formatLandmarksFlat([...rl, ...ll, ...ht])}"`,
      rle(ll),
      rle(rl),
      rnd() < 0.1 ? '' : rle(ht),
      size('1024'),
      size('1024'),
    ];
    lines.push(cells.join(','));
  }
  return { text: `${lines.join('\n')}\n`, ids };
}

test("real-shaped rows: the fast path gives the oracle's rows for every source, and is the path taken", async () => {
  const { text, ids } = realShapedCsv(30, 21);
  const p = write(text);
  await same(p, ids, { source: 'landmarks' });
  await same(p, ids);
  await same(p, ids, { source: 'rle' });
  const { rows } = await joinChexmask(p, ids, { source: 'rle' });
  assert.ok(rows.size > 15);
  // the fast path carves landmarks from shared blocks; the checked path allocates one array per row
  const shared = [...rows.values()].filter((r) => r.landmarks.buffer.byteLength > r.landmarks.byteLength);
  assert.ok(shared.length >= rows.size * 0.6, `${shared.length} of ${rows.size} rows took the fast path`);
  for (const r of rows.values()) assert.ok((r.rle?.leftLung.length ?? 0) > 3000, 'long RLE cells');
});

test('truncated last row: unquoted → bad-row for that id; inside quotes → bad-csv naming row and field', async () => {
  const { text, ids } = shapedCsv({ seed: 7, n: 10 });
  const cutPlain = text.slice(0, text.lastIndexOf(',', text.length - 2));
  await same(write(cutPlain), ids);
  const cutQuoted = text.slice(0, text.lastIndexOf('[') - 3);
  const p = write(cutQuoted);
  await rejects(oracleJoin(p, ids), /Quote Not Closed/);
  const e = await rejects(
    joinChexmask(p, ids),
    /row 10, field "Landmarks": the file ends inside a quoted field/,
  );
  assert.is((e as DataError).reason, 'bad-csv');
});

test('a missing column fails up front listing every missing column', async () => {
  const { text, ids } = shapedCsv({
    seed: 8,
    n: 3,
    order: HEADER.filter((c) => c !== 'Heart' && c !== 'Width'),
  });
  await rejects(
    joinChexmask(write(text), ids),
    /cm\d+\.csv: missing column\(s\) "Heart", "Width"; header is: dicom_id,/,
  );
});

test('oversize RLE cell: the row is refused as too-large naming file, row, field; the rest go on', async () => {
  const lm = formatLandmarksFlat(Array.from({ length: 240 }, (_, i) => i % 50));
  const big = Array.from({ length: 1000 }, (_, i) => `${i * 100 + 1} 50`).join(' ');
  const p = write(
    [
      HEADER.join(','),
      `a,0.9,0.9,"${lm}",1 4,${big},9 2,1000,100`,
      `b,0.9,0.9,"${lm}",1 4,5 4,9 2,1000,100`,
    ].join('\n'),
  );
  for (const chunkBytes of [32, 1 << 20]) {
    const { rows, summary } = await joinChexmask(p, ['a', 'b'], { maxFieldBytes: 4000, chunkBytes });
    assert.equal([...rows.keys()], ['b']);
    assert.is(summary.refused.counts['too-large'], 1);
    assert.match(
      summary.refused.examples['too-large'][0],
      /cm\d+\.csv, row 1, field "Right Lung": the cell is over/,
    );
  }
  const lmOnly = await joinChexmask(p, ['a', 'b'], {
    maxFieldBytes: 4000,
    source: 'landmarks',
    chunkBytes: 32,
  });
  assert.equal([...lmOnly.rows.keys()], ['a', 'b'], 'the landmarks source holds no RLE cell');
});

test('landmarks source never validates RLE; empty masks still counted; progress reaches the file size', async () => {
  const { text, ids } = shapedCsv({ seed: 10, n: 50 });
  const p = write(text);
  let bytes = [0, 0];
  const lm = await joinChexmask(p, ids, { source: 'landmarks', onBytes: (a, b) => (bytes = [a, b]) });
  const all = await oracleJoin(p, ids, { validateRle: false });
  assert.equal(lm.summary, all.summary);
  assert.equal(bytes, [readFileSync(p).length, readFileSync(p).length]);
  assert.ok(REGIONS.some((r) => lm.summary.emptyMaskCells[r] > 0));
  for (const r of lm.rows.values()) assert.is(r.rle, undefined);
});

test.run();
