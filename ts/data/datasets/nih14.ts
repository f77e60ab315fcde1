/**
 * NIH ChestX-ray14 (CheXmask's "ChestX-ray8"): Data_Entry_2017_v2020.csv, the official
 * train_val_list.txt / test_list.txt, and the PNGs under images/ (NIH Box, GCS) or
 * images_NNN/images/ (Kaggle). Labels come from `Finding Labels`, pipe-separated, positives only
 * (`Effusion` is Pleural Effusion); there is no uncertain label, so every label counts.
 */
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DataError, type ReasonCounter } from '../../common/errors.js';
import { type CsvReader, findCsv } from '../csv.js';
import type { Split } from '../mimic.js';
import type { Refusal, TableRow, TableRules } from '../table.js';
import type { DatasetAdapter } from './adapter.js';
import { datasetHead, IndexBuild, type ResolvedIndexOptions } from './common.js';
import { CHEXMASK_FILE, CHEXMASK_ID_COLUMN, datasetIdProblem } from './names.js';

/** The 15 tokens of `Finding Labels`. */
export const NIH_FINDINGS = [
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Effusion',
  'Emphysema',
  'Fibrosis',
  'Hernia',
  'Infiltration',
  'Mass',
  'No Finding',
  'Nodule',
  'Pleural_Thickening',
  'Pneumonia',
  'Pneumothorax',
] as const;
/** Our five findings (FINDINGS order) as NIH spells them. */
export const NIH_FIVE = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Effusion'] as const;
export const NIH_COLUMNS = ['Image Index', 'Finding Labels', 'Patient ID', 'View Position'] as const;
export const NIH_SPLIT_FILES = { trainVal: 'train_val_list.txt', test: 'test_list.txt' } as const;

const KNOWN = new Set<string>(NIH_FINDINGS);

/** The label table: the v2020 file (corrected ages) when present, else the 2017 one. */
export function nihTable(root: string): string {
  for (const base of ['Data_Entry_2017_v2020', 'Data_Entry_2017']) {
    try {
      return findCsv(join(root, base));
    } catch {}
  }
  throw new DataError(
    'missing-file',
    'no Data_Entry_2017_v2020.csv[.gz] or Data_Entry_2017.csv[.gz] (the NIH label table)',
    { file: root },
  );
}

/**
 * The five raw labels (1/0, FINDINGS order) of a `Finding Labels` cell, or a message saying what is
 * wrong with it (an unknown token, "No Finding" next to a finding, an empty cell).
 */
export function nihLabels(cell: string): number[] | string {
  const tokens = cell.split('|').map((t) => t.trim());
  const unknown = tokens.find((t) => !KNOWN.has(t));
  if (unknown !== undefined) return `"${unknown}" is not an NIH finding (${NIH_FINDINGS.join(', ')})`;
  if (tokens.includes('No Finding') && tokens.length > 1) return '"No Finding" next to a finding';
  return NIH_FIVE.map((f) => (tokens.includes(f) ? 1 : 0));
}

/**
 * The official split lists: file name → train (train_val_list) or test. A name listed twice in one file
 * is counted; a name in both files is an error naming both lines.
 */
export async function readNihSplit(root: string, duplicates: ReasonCounter): Promise<Map<string, Split>> {
  const out = new Map<string, { split: Split; where: string }>();
  for (const [split, name] of [
    ['train', NIH_SPLIT_FILES.trainVal],
    ['test', NIH_SPLIT_FILES.test],
  ] as const) {
    const file = join(root, name);
    if (!existsSync(file))
      throw new DataError('missing-file', `the official split list is missing (or use --split patient)`, {
        file,
      });
    let line = 0;
    const rl = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
    for await (const raw of rl) {
      line++;
      const id = raw.trim();
      if (!id) continue;
      const seen = out.get(id);
      if (seen && seen.split === split) {
        duplicates.add(file, `${file}, line ${line} repeats ${seen.where} (${id})`);
        continue;
      }
      if (seen)
        throw new DataError(
          'conflicting-duplicate',
          `${id} is in both official split lists (${seen.where} and line ${line}); remove one`,
          { file, row: line, id },
        );
      out.set(id, { split, where: `${file}, line ${line}` });
    }
  }
  return new Map([...out].map(([k, v]) => [k, v.split]));
}

/**
 * Where each PNG is: images/NAME.png (Box), png/NAME.png (Google Cloud's bucket) or
 * images_NNN/images/NAME.png (Kaggle), listed once.
 */
export function listNihImages(root: string): Map<string, string> {
  const found = new Map<string, string>();
  const dirs: string[] = [];
  for (const d of ['images', 'png']) if (existsSync(join(root, d))) dirs.push(d);
  for (const d of existsSync(root) ? readdirSync(root).sort() : [])
    if (/^images_\d{3}$/.test(d) && existsSync(join(root, d, 'images'))) dirs.push(`${d}/images`);
  for (const d of dirs)
    for (const f of readdirSync(join(root, d))) if (!found.has(f)) found.set(f, `${d}/${f}`);
  return found;
}

/** Checks a row's ids before the duplicate check: the file name, and the patient the name repeats. */
function nihIds(table: string, r: TableRow, c: { id: number; patient: number }): Refusal | null {
  const id = r.cell(c.id);
  const idBad = datasetIdProblem('nih14', 'Image Index', id);
  if (idBad) return { drop: 'bad-row', message: `${table}, row ${r.row}: ${idBad}` };
  // a row that disagrees with itself is refused (its `Follow-up #` differs from the name's suffix in
  // about a fifth of the real rows, so the name's suffix is the study)
  const patient = r.cell(c.patient);
  if (!/^\d{1,8}$/.test(patient) || Number(patient) !== Number(id.slice(0, 8)))
    return {
      drop: 'bad-row',
      message: `${table}, row ${r.row}, id ${id}, field "Patient ID": "${patient}" is not the patient of the file name`,
    };
  return null;
}

/**
 * The label table's rows: labels, view, the official split list (when `official`), and the PNG among
 * the listed ones (when `images`, i.e. checkFiles).
 */
function nihRows(
  build: IndexBuild,
  table: string,
  official: Map<string, Split> | null,
  images: Map<string, string> | null,
) {
  return (csv: CsvReader): TableRules<string> => {
    const c = {
      id: csv.col('Image Index'),
      labels: csv.col('Finding Labels'),
      patient: csv.col('Patient ID'),
      view: csv.col('View Position'),
    };
    return {
      keyName: 'Image Index',
      read: (r) => nihIds(table, r, c) ?? { key: r.cell(c.id), value: r.cell(c.id) },
      take: (id, r) => {
        const where = `${table}, row ${r.row}, id ${id}`;
        const raw = nihLabels(r.cell(c.labels));
        if (typeof raw === 'string') {
          build.dropped.add('bad-label-value', `${where}, field "Finding Labels": ${raw}`);
          return;
        }
        if (!build.keepsView(r.cell(c.view), where)) return;
        const split = official ? official.get(id) : 'train';
        if (!split) {
          build.dropped.add(
            'no-split-row',
            `${where}: in neither ${NIH_SPLIT_FILES.trainVal} nor ${NIH_SPLIT_FILES.test}`,
          );
          return;
        }
        const draft = {
          dataset: 'nih14' as const,
          dicomId: id,
          subjectId: id.slice(0, 8),
          studyId: id.slice(9, 12),
          view: r.cell(c.view),
          split,
          path: `images/${id}`,
        };
        // the PNG is wherever the download put it (checkFiles lists the folders once)
        build.admit(
          draft,
          raw,
          () =>
            images?.get(id) ?? {
              drop: 'image-missing',
              message: `${where}: no ${id} under images/ or images_NNN/images/`,
            },
          where,
        );
      },
    };
  };
}

async function buildNihIndex(opts: ResolvedIndexOptions) {
  const { root } = opts;
  const table = nihTable(root);
  const build = new IndexBuild(opts);
  const official = opts.split === 'official' ? await readNihSplit(root, build.duplicates) : null;
  const images = opts.checkFiles ? listNihImages(root) : null;
  await build.readListing(table, NIH_COLUMNS, nihRows(build, table, official, images));
  if (official) build.carveValidate(opts.validateFraction);
  else build.splitByPatient();
  const files = {
    labels: table,
    trainVal: official ? join(root, NIH_SPLIT_FILES.trainVal) : null,
    test: official ? join(root, NIH_SPLIT_FILES.test) : null,
  };
  return build.finish(datasetHead('nih14', opts, files));
}

export const nih14: DatasetAdapter = {
  name: 'nih14',
  title: 'NIH ChestX-ray14 (Data_Entry_2017_v2020.csv, train_val_list.txt/test_list.txt, images/)',
  chexmaskIdColumn: CHEXMASK_ID_COLUMN.nih14,
  chexmaskFile: CHEXMASK_FILE.nih14,
  buildIndex: buildNihIndex,
};
