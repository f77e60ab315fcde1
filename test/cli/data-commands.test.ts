import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import yargs from 'yargs';
import cacheCmd from '../../ts/cli/cache.js';
import indexCmd from '../../ts/cli/index-command.js';
import overlayCmd from '../../ts/cli/overlay.js';
import synthCmd from '../../ts/cli/synth.js';
import { tempDir } from '../data/helpers.js';
import { smallSynthArgs } from './helpers.js';

async function cli(args: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  let out = '';
  let err = '';
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    // biome-ignore lint/suspicious/noExplicitAny: command modules with their own argv types
    const cmds = [synthCmd, indexCmd, cacheCmd, overlayCmd] as any[];
    await yargs(args)
      .command(cmds)
      .strict()
      .exitProcess(false)
      .fail((m: string) => {
        throw new Error(m);
      })
      .parseAsync();
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
  const code = process.exitCode as number | undefined;
  process.exitCode = before;
  return { out, err, code };
}

test('synth --dataset nih14 → index --dataset nih14 → cache: NIH layout, PNGs (some RGBA), Image Index join', async () => {
  const d = tempDir();
  const s = await cli([
    'synth',
    '--dataset',
    'nih14',
    '--out',
    d,
    '--n',
    '40',
    '--seed',
    '5',
    '--width',
    '96',
    '--height',
    '112',
    '--no-progress',
  ]);
  assert.is(s.code, undefined, s.err);
  const synth = JSON.parse(s.out);
  const root = join(d, 'nih14');
  assert.is(synth.mimicRoot, root);
  assert.is(synth.chexmaskCsv, join(d, 'chexmask', 'ChestX-Ray8.csv'));
  const table = readFileSync(join(root, 'Data_Entry_2017_v2020.csv'), 'utf8').trim().split('\n');
  assert.is(table[0].split(',').length, 11);
  const ids = table.slice(1).map((l) => l.split(',')[0]);
  assert.ok(ids.every((id) => /^\d{8}_\d{3}\.png$/.test(id)));
  const kinds = await Promise.all(ids.map((id) => sharp(join(root, 'images', id)).metadata()));
  assert.ok(kinds.every((m) => m.format === 'png'));
  const rgba = kinds.filter((m) => m.channels === 4).length;
  assert.ok(rgba >= 1, 'at least one RGBA PNG');
  const ix = await cli([
    'index',
    '--dataset',
    'nih14',
    '--root',
    root,
    '--out',
    join(d, 'index'),
    '--validate-fraction',
    '0.2',
  ]);
  assert.is(ix.code, undefined, ix.err);
  const index = JSON.parse(ix.out);
  assert.is(index.dataset, 'nih14');
  assert.is(index.kept, ids.length);
  assert.ok(index.perSplit.train > 0 && index.perSplit.validate > 0 && index.perSplit.test > 0, ix.out);
  const c = await cli([
    'cache',
    '--index',
    join(d, 'index'),
    '--root',
    root,
    '--chexmask',
    synth.chexmaskCsv,
    '--out',
    join(d, 'cache'),
    '--size',
    '32',
    '--no-progress',
  ]);
  assert.is(c.code, undefined, c.err);
  const cache = JSON.parse(c.out);
  assert.is(cache.chexmask.idColumn, 'Image Index');
  // every image with a good CheXmask row is cached, RGBA ones included; nothing fails to decode
  assert.is(cache.cached, synth.chexmaskRows - synth.lowRcaRows);
  assert.equal(Object.keys(cache.skipped.counts), ['no-chexmask']);
  // the index's row filters are recorded, for a run to compare with its data.views / requirePositive / dataset
  const meta = JSON.parse(readFileSync(join(cache.dir, 'cache.json'), 'utf8'));
  const views = JSON.parse(readFileSync(join(d, 'index', 'summary.json'), 'utf8')).options.views;
  assert.equal(views, ['PA', 'AP']);
  assert.equal(meta.build.rows, { dataset: 'nih14', views, requirePositive: false });
});

test('synth → index → cache → overlay through the command modules', async () => {
  const d = tempDir();
  const s = await cli(smallSynthArgs(d));
  assert.is(s.code, undefined, s.err);
  assert.is(JSON.parse(s.out).n, 24);
  const root = join(d, 'mimic');
  const i = await cli([
    'index',
    '--root',
    root,
    '--out',
    join(d, 'idx'),
    '--uncertain',
    'ignore',
    '--split',
    'patient',
    '--split-seed',
    '2',
  ]);
  assert.is(i.code, undefined, i.err);
  const summary = JSON.parse(readFileSync(join(d, 'idx', 'summary.json'), 'utf8'));
  assert.is(summary.options.uncertain, 'ignore');
  assert.is(summary.options.split, 'patient');
  const csv = join(d, 'chexmask', 'MIMIC-CXR-JPG.csv');
  const c = await cli([
    'cache',
    '--index',
    join(d, 'idx'),
    '--root',
    root,
    '--chexmask',
    csv,
    '--out',
    join(d, 'cache'),
    '--no-progress',
    '--thickness',
    '1',
  ]);
  assert.is(c.code, undefined, c.err);
  const cs = JSON.parse(c.out);
  assert.ok(cs.cached > 0);
  assert.ok(existsSync(join(cs.dir, 'cache.json')));
  const first = JSON.parse(readFileSync(join(d, 'idx', 'index.jsonl'), 'utf8').split('\n')[0]);
  const rowIds = new Set(
    readFileSync(csv, 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.split(',')[0]),
  );
  const entry =
    readFileSync(join(d, 'idx', 'index.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((e) => rowIds.has(e.dicomId)) ?? first;
  const png = join(d, 'fig.png');
  const overlay = (id: string, ...more: string[]) =>
    cli(['overlay', '--image', join(root, entry.path), '--chexmask', csv, '--id', id, '--out', png, ...more]);
  const o = await overlay(entry.dicomId, '--alpha', '0.7');
  assert.is(o.code, undefined, o.err);
  const meta = await sharp(png).metadata();
  assert.is(meta.height, entry.height);
  assert.ok((meta.width as number) > 2 * entry.width);
  const bad = await overlay('no-such-id');
  assert.is(bad.code, 2);
  assert.match(bad.err, /id no-such-id: no row with this dicom_id/);
  const badColor = await overlay(entry.dicomId, '--lung-color', 'pink');
  assert.match(badColor.err, /--lung-color must be/);
});

test.run();
