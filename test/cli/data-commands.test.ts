import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import yargs from 'yargs';
import cacheCmd from '../../ts/cli/cache.js';
import indexCmd from '../../ts/cli/index-command.js';
import overlayCmd from '../../ts/cli/overlay.js';
import synthCmd from '../../ts/cli/synth.js';
import { decodeDicom } from '../../ts/images/dicom.js';
import { rejects, tempDir } from '../data/helpers.js';
import { smallSynthArgs } from './helpers.js';

async function cli(
  args: string[],
  onErr?: (s: string) => void,
): Promise<{ out: string; err: string; code: number | undefined }> {
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
    onErr?.(s);
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

test('index that keeps no image (the images under a folder the adapter does not look in) is refused, naming the root and the drops; nothing written', async () => {
  const d = tempDir();
  const s = await cli([
    'synth',
    '--dataset',
    'nih14',
    '--out',
    d,
    '--n',
    '6',
    '--seed',
    '1',
    '--width',
    '64',
    '--height',
    '64',
    '--no-progress',
  ]);
  assert.is(s.code, undefined, s.err);
  const root = join(d, 'nih14');
  renameSync(join(root, 'images'), join(root, 'elsewhere'));
  const r = await cli(['index', '--dataset', 'nih14', '--root', root, '--out', join(d, 'idx')]);
  assert.is(r.code, 2, r.err);
  assert.match(
    r.err,
    new RegExp(
      `error: ${root}: no image of nih14 was kept: every listed row was dropped \\(\\{"image-missing":6\\}\\)`,
    ),
  );
  assert.not.ok(existsSync(join(d, 'idx')));
});

test('index --reader-rule any|majority (vindr): the labels follow it and the summary records it; other values are refused', async () => {
  const d = tempDir();
  const root = join(d, 'vinbig');
  mkdirSync(root);
  const img = (n: number) => n.toString(16).padStart(32, '0');
  // image 1: Cardiomegaly by one of three readers
  writeFileSync(
    join(root, 'train.csv'),
    [
      'image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max',
      `${img(1)},Cardiomegaly,3,R1,1,1,2,2`,
      `${img(1)},No finding,14,R2,,,,`,
      `${img(1)},No finding,14,R3,,,,`,
      '',
    ].join('\n'),
  );
  const index = (out: string, ...more: string[]) =>
    cli(['index', '--dataset', 'vindr', '--root', root, '--out', join(d, out), '--no-check-files', ...more]);
  const labels = (out: string) =>
    JSON.parse(readFileSync(join(d, out, 'index.jsonl'), 'utf8').trim()).labels as number[];
  const options = (out: string) => JSON.parse(readFileSync(join(d, out, 'summary.json'), 'utf8')).options;
  for (const [out, rule, cardio] of [
    ['any', ['--reader-rule', 'any'], 1],
    ['majority', ['--reader-rule', 'majority'], 0],
    ['default', [], 0],
  ] as const) {
    const r = await index(out, ...rule);
    assert.is(r.code, undefined, r.err);
    assert.equal(labels(out), [0, cardio, 0, 0, 0], out);
    assert.is(options(out).readerRule, out === 'any' ? 'any' : 'majority', out);
  }
  await rejects(
    index('bad', '--reader-rule', 'all'),
    /Invalid values:\s+Argument: reader-rule, Given: "all", Choices: "majority", "any"/,
  );
  assert.not.ok(existsSync(join(d, 'bad')));
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
  // --out: another extension is refused before any work (it used to get PNG bytes); a folder that does
  // not exist yet is made (it used to fail with a bare ENOENT after rendering)
  const figure = (out: string) =>
    cli([
      'overlay',
      '--image',
      join(root, entry.path),
      '--chexmask',
      csv,
      '--id',
      entry.dicomId,
      '--out',
      out,
    ]);
  const webp = await figure(join(d, 'fig.webp'));
  assert.is(webp.code, 2);
  assert.match(webp.err, /--out .*fig\.webp: a figure is written as \.png, \.jpg or \.jpeg/);
  assert.not.ok(existsSync(join(d, 'fig.webp')));
  const nested = join(d, 'new', 'folder', 'fig.jpg');
  const made = await figure(nested);
  assert.is(made.code, undefined, made.err);
  assert.is((await sharp(nested).metadata()).format, 'jpeg');
});

test('Ctrl-C during cache: stops at the next image, no temp left, exit 130 saying the same command continues; it does', async () => {
  const d = tempDir();
  assert.is((await cli(smallSynthArgs(d))).code, undefined);
  assert.is((await cli(['index', '--root', join(d, 'mimic'), '--out', join(d, 'idx')])).code, undefined);
  const args = ['cache', '--index', join(d, 'idx'), '--root', join(d, 'mimic')];
  args.push('--chexmask', join(d, 'chexmask', 'MIMIC-CXR-JPG.csv'), '--out', join(d, 'cache'));
  args.push('--shard-size', '8', '--concurrency', '1');
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const before = signals.map((n) => process.listeners(n));
  let sent = false;
  let shards = 0;
  try {
    // Ctrl-C while the second shard is decoded (the progress line of its images)
    const stopped = await cli(args, (line) => {
      const m = /^\[cache\] (\d+)\/\d+$/m.exec(line);
      if (m && Number(m[1]) > 8 && !sent) {
        sent = true;
        process.emit('SIGINT', 'SIGINT');
      }
    });
    assert.ok(sent, stopped.err);
    assert.is(stopped.code, 130, stopped.err);
    assert.match(stopped.err, /stopping after the current step .*run the same command again to continue/);
    const m =
      /interrupted: stopped building the image cache .* with 1 of (\d+) shard\(s\) finished; they are kept, and the same build run again continues from them\./.exec(
        stopped.err,
      );
    assert.ok(m, stopped.err);
    shards = Number(m[1]);
    const dir = readdirSync(join(d, 'cache'))[0]!;
    assert.equal(readdirSync(join(d, 'cache', dir)).sort(), ['shard-00000.bin', 'shard-00000.json']);
    // the command takes its Ctrl-C handlers off this process when it ends (uvu runs every file in
    // one process: a handler left behind made a later file's SIGTERM a "second signal", exit 130)
    for (const [i, n] of signals.entries()) assert.equal(process.listeners(n), before[i], n);
  } finally {
    // a failed check above: take them off anyway
    signals.forEach((n, i) => {
      for (const l of process.listeners(n)) if (!before[i]!.includes(l)) process.off(n, l);
    });
  }
  const again = await cli(args);
  assert.is(again.code, undefined, again.err);
  const summary = JSON.parse(again.out);
  assert.is(summary.shardsReused, 1);
  assert.is(summary.shardsBuilt, shards - 1);
});

test('overlay draws a VinDr DICOM (.dicom): the left panel is the decoded DICOM', async () => {
  const d = tempDir();
  const size = ['--width', '96', '--height', '112'];
  const s = await cli(['synth', '--dataset', 'vindr', '--out', d, '--n', '6', ...size, '--no-progress']);
  assert.is(s.code, undefined, s.err);
  const { mimicRoot, chexmaskCsv } = JSON.parse(s.out);
  const id = readFileSync(chexmaskCsv, 'utf8').split('\n')[1]!.split(',')[0]!;
  const image = ['train', 'test'].map((sub) => join(mimicRoot, sub, `${id}.dicom`)).find(existsSync)!;
  const png = join(d, 'vindr.png');
  // used to be refused: "not a JPEG or PNG file"
  const o = await cli(['overlay', '--image', image, '--chexmask', chexmaskCsv, '--id', id, '--out', png]);
  assert.is(o.code, undefined, o.err);
  const want = await decodeDicom(readFileSync(image));
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.is(info.height, want.height);
  const left = Uint8Array.from({ length: want.width * want.height }, (_, i) => {
    const [y, x] = [Math.floor(i / want.width), i % want.width];
    return data[(y * info.width + x) * info.channels]!;
  });
  assert.equal(left, want.gray);
  // --out names a link of the user's own (a figure kept in a shared folder): written through, the link kept
  mkdirSync(join(d, 'shared'));
  writeFileSync(join(d, 'shared', 'fig.png'), 'old');
  const link = join(d, 'fig-link.png');
  symlinkSync(join('shared', 'fig.png'), link);
  const via = await cli(['overlay', '--image', image, '--chexmask', chexmaskCsv, '--id', id, '--out', link]);
  assert.is(via.code, undefined, via.err);
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link was replaced');
  assert.equal(readFileSync(join(d, 'shared', 'fig.png')), readFileSync(png));
});

test.run();
