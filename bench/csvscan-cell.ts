/**
 * One huge CheXmask cell: time and peak RSS of the join over a file whose single row holds a
 * Landmarks cell of N MB (the scanner's buffer growth; docs/data.md "Memory"). Each size runs in a
 * child process of its own, so each peak RSS is that size's alone. A cell over the 256 MB cap is
 * refused (too-large) and the scan goes on; a cell under it is kept, then refused as bad-landmarks.
 *
 *   node --import tsx bench/csvscan-cell.ts [--mb 32,64,128,300]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { joinChexmask } from '../ts/data/chexmask.js';

const HEADER = 'dicom_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width';

const { values: a } = parseArgs({
  options: { mb: { type: 'string', default: '32,64,128,300' }, child: { type: 'string' } },
});

if (a.child) {
  const t0 = performance.now();
  const { summary } = await joinChexmask(a.child, ['a'], { source: 'landmarks' });
  const ms = performance.now() - t0;
  const maxRssMB = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(JSON.stringify({ ms, maxRssMB, refused: summary.refused.counts }));
} else {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-cell-'));
  const rows: Record<string, unknown>[] = [];
  try {
    for (const mb of String(a.mb).split(',').map(Number)) {
      const file = join(dir, `cell-${mb}.csv`);
      const cell = Buffer.alloc(mb << 20, 0x31); // digits only: one unbroken cell
      writeFileSync(
        file,
        Buffer.concat([Buffer.from(`${HEADER}\na,0.9,0.9,"`), cell, Buffer.from('",,,,100,100\n')]),
      );
      const r = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', file], {
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`child for ${mb} MB failed: ${r.stderr}`);
      const out = JSON.parse(r.stdout) as { ms: number; maxRssMB: number; refused: Record<string, number> };
      rows.push({
        cellMB: mb,
        ms: Math.round(out.ms),
        maxRssMB: Math.round(out.maxRssMB),
        refused: out.refused,
      });
      rmSync(file);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify({ rows }, null, 2)}\n`);
}
