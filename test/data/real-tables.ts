/**
 * The real label tables shipped in the PyPI wheel torchxrayvision==1.5.7 (Apache-2.0; NIH's
 * Data_Entry_2017_v2020, CheXpert's train.csv, VinBigData's train.csv, PadChest's labels), fetched once
 * with pip into ~/.cache/cxrmask and reused. Not committed: together they are tens of MB.
 * When PyPI cannot be reached the tests that need them skip, saying so.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pythonExe } from '../../bench/common.js';

export const TXRV = 'torchxrayvision==1.5.7';
const DIR = join(process.env.CXRMASK_CACHE ?? join(homedir(), '.cache', 'cxrmask'), 'torchxrayvision-1.5.7');
export const TABLES = {
  nih: 'Data_Entry_2017_v2020.csv.gz',
  chexpert: 'chexpert_train.csv.gz',
  vinbig: 'vinbigdata-train.csv.gz',
  padchest: 'PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz',
} as const;

let why: string | null = null;
/** The folder holding the tables, or null (with `realTablesMissing()` saying why). */
export function realTables(): string | null {
  if (existsSync(join(DIR, 'data', TABLES.nih))) return join(DIR, 'data');
  if (why) return null;
  const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-txrv-'));
  try {
    const py = pythonExe();
    execFileSync(py, ['-m', 'pip', 'download', TXRV, '--no-deps', '-q', '-d', tmp], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 300_000,
    });
    const code = [
      'import glob, sys, zipfile',
      'z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])',
      `names = ${JSON.stringify(Object.values(TABLES))}`,
      'for n in names: z.extract("torchxrayvision/data/" + n, sys.argv[1])',
    ].join('\n');
    execFileSync(py, ['-c', code, tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
    mkdirSync(DIR, { recursive: true });
    rmSync(join(DIR, 'data'), { recursive: true, force: true });
    renameSync(join(tmp, 'torchxrayvision', 'data'), join(DIR, 'data'));
    return join(DIR, 'data');
  } catch (e) {
    why = `cannot fetch ${TXRV} from PyPI (${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message)
      .trim()
      .split('\n')
      .pop()})`;
    return null;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export function realTablesMissing(): string {
  return `SKIP real label tables: ${why ?? 'not fetched'}`;
}
