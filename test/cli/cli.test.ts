/**
 * CLI: help text of every command, config errors reported before any work, flag parsing.
 * Subprocesses run the TypeScript entry point through tsx (no build needed).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configFromArgv, overridesFromArgv } from '../../ts/cli/config-merge.js';
import { buildCli, docsEpilogue } from '../../ts/cli/main.js';
import { runCommand } from '../../ts/cli/run-command.js';
import { ConfigError, DataError, InterruptedError, NativeError, UsageError } from '../../ts/common/errors.js';
import { joinChexmask } from '../../ts/data/chexmask.js';
import { formatLandmarksFlat } from '../../ts/data/landmarks.js';
import { Classifier } from '../../ts/model/classifier.js';
import { readModelMeta } from '../../ts/model/meta.js';
import { RUN_DATA_FILE } from '../../ts/model/run-files.js';
import { diagnostics } from '../../ts/native.js';
import { synthesize } from '../../ts/synth/synthesize.js';
import { runCli } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-cli-'));

async function help(args: string): Promise<string> {
  const y = await buildCli([]);
  let output = '';
  await y.exitProcess(false).parseAsync(args, {}, (_e: unknown, _a: unknown, o: string) => {
    output = o;
  });
  return output;
}

test('runs when started through a symlink, as npm bin links and npx do', () => {
  const link = join(tmp, 'cxrmask-link.ts');
  symlinkSync(join(process.cwd(), 'ts/cli/main.ts'), link);
  const r = spawnSync(process.execPath, ['--import', 'tsx', link, '--version'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\d+\.\d+\.\d+/);
});

test('predict --bf16: the image tower runs under bf16 autocast where the CPU has it, near float32', () => {
  const image = join(import.meta.dirname, '..', 'data', 'fixtures', 'phantom-640x768.jpg');
  const scores = (extra: string[]) => {
    const r = runCli(['predict', image, '--model', 'models/tiny', '--device', 'cpu', '--json', ...extra]);
    assert.is(r.code, 0, r.err);
    return (JSON.parse(r.out) as { original: Record<string, number> }).original;
  };
  const [a, b] = [scores([]), scores(['--bf16'])];
  const worst = Math.max(...Object.keys(a).map((f) => Math.abs(a[f]! - b[f]!)));
  assert.ok(worst < 0.05, `--bf16 moved a probability by ${worst}`);
  if (diagnostics().cpu.bf16) assert.ok(worst > 0, '--bf16 on a bf16 CPU gave float32 answers');
});

test('predict takes a trained cell as --model, as serve does: its run names the model folder and contours', async () => {
  const model = join(process.cwd(), 'models', 'tiny');
  const run = join(tmp, 'runs', 'R');
  const cell = join(run, 'cells', 'lp-original-s0');
  const cache = join(tmp, 'cache', 'k1');
  mkdirSync(cell, { recursive: true });
  mkdirSync(cache, { recursive: true });
  writeFileSync(join(run, 'config.json'), JSON.stringify({ model: { dir: model } }));
  // the run trained on RLE contours: a CheXmask row must then keep its RLE masks
  writeFileSync(join(run, RUN_DATA_FILE), JSON.stringify({ fingerprint: { cacheDir: cache } }));
  writeFileSync(join(cache, 'cache.json'), JSON.stringify({ contour: { thickness: 2, source: 'rle' } }));
  const head = await Classifier.create({ inputDim: readModelMeta(model).embedDim, device: 'cpu', seed: 3 });
  await head.save(join(cell, 'best.ckpt'), { weightsOnly: true });
  await head.dispose();
  const s = await synthesize({ out: join(tmp, 'synth'), n: 4, seed: 5, width: 256, height: 288 });
  const im = s.images.find((x) => x.chexmask === 'ok')!;
  const image = join(s.mimicRoot, im.path);
  const scores = (args: string[]) => {
    const r = runCli(['predict', image, ...args, '--device', 'cpu', '--json']);
    assert.is(r.code, 0, r.err);
    return JSON.parse(r.out) as { kind: string; maskSource: string | null; original: Record<string, number> };
  };
  const withRow = ['--chexmask', s.chexmaskCsv, '--dicom-id', im.dicomId];
  const byCell = scores(['--model', cell, ...withRow]);
  assert.equal([byCell.kind, byCell.maskSource], ['linear-probe', 'chexmask']);
  assert.equal(byCell, scores(['--model', model, '--checkpoint', join(cell, 'best.ckpt'), ...withRow]));
  const both = runCli(['predict', image, '--model', cell, '--checkpoint', join(cell, 'best.ckpt')]);
  assert.is(both.code, 2, both.err);
  assert.match(both.err, /a cell brings its own best\.ckpt/);
});

test('predict --chexmask: the quality filter of serve (--min-dice, default 0.7) and its row of a duplicate id', async () => {
  const s = await synthesize({ out: join(tmp, 'synth-dice'), n: 4, seed: 6, width: 256, height: 288 });
  const im = s.images.find((x) => x.chexmask === 'ok')!;
  const image = join(s.mimicRoot, im.path);
  const good = (await joinChexmask(s.chexmaskCsv, [im.dicomId], { minDice: 0 })).rows.get(im.dicomId)!;
  const line = (dice: string, lm: ArrayLike<number>) =>
    [im.dicomId, dice, '0.95', `"${formatLandmarksFlat(lm)}"`, '', '', '', good.height, good.width].join(',');
  const header = 'dicom_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width';
  const clean = join(tmp, 'clean.csv');
  writeFileSync(clean, `${header}\n${line('0.9', good.landmarks)}\n`);
  // a first, low-quality row of the same id whose landmarks are elsewhere: not the id's row
  const dup = join(tmp, 'dup.csv');
  const shrunk = Array.from(good.landmarks, (v) => v / 2);
  writeFileSync(dup, `${header}\n${line('0.3', shrunk)}\n${line('0.9', good.landmarks)}\n`);
  const predict = (...args: string[]) =>
    runCli(['predict', image, '--model', 'models/tiny', '--device', 'cpu', '--json', ...args]);
  const want = predict('--chexmask', clean);
  assert.is(want.code, 0, want.err);
  const got = predict('--chexmask', dup);
  assert.is(got.code, 0, got.err);
  assert.equal(JSON.parse(got.out), JSON.parse(want.out), 'the row that passes, as serve and training pick');
  const low = predict('--chexmask', dup, '--min-dice', '0.25');
  assert.is(low.code, 0, low.err);
  assert.not.equal(JSON.parse(low.out).masked, JSON.parse(want.out).masked, '--min-dice reaches the lookup');
  // user-fixable refusals exit 2, naming the file and id, before the model is loaded
  const below = predict('--chexmask', clean, '--min-dice', '0.95');
  assert.is(below.code, 2, below.err);
  assert.match(
    below.err,
    `error: ${clean}, id ${im.dicomId}: no usable CheXmask row (row 1: Dice RCA (Mean) 0.9 < 0.95)`,
  );
  const unknown = predict('--chexmask', clean, '--dicom-id', 'nope');
  assert.is(unknown.code, 2, unknown.err);
  assert.match(unknown.err, `error: ${clean}, id nope: no row with this dicom_id`);
  for (const v of ['1.5', '-0.1', 'x']) {
    const bad = predict('--chexmask', clean, '--min-dice', v);
    assert.is(bad.code, 2, bad.err);
    assert.match(bad.err, /^error: --min-dice \S+: expected a Dice RCA \(Mean\) from 0 to 1$/m);
  }
});

test('predict --checkpoint missing or a folder: exit 2 naming the flag and the path, before any model is read', () => {
  const image = join(import.meta.dirname, '..', 'data', 'fixtures', 'phantom-640x768.jpg');
  const missing = join(tmp, 'nope.ckpt');
  const r = runCli(['predict', image, '--model', 'models/tiny', '--checkpoint', missing]);
  assert.is(r.code, 2, r.err);
  assert.is(r.err, `error: --checkpoint ${missing}: cannot read it (ENOENT)\n`);
  const folder = runCli(['predict', image, '--model', 'models/tiny', '--checkpoint', tmp]);
  assert.is(folder.code, 2, folder.err);
  assert.is(folder.err, `error: --checkpoint ${tmp}: not a regular file (a folder)\n`);
});

test('top-level help lists every command', async () => {
  const out = await help('--help');
  for (const c of ['demo', 'run', 'zeroshot', 'train', 'eval', 'predict'])
    assert.match(out, new RegExp(`cxrmask ${c}`));
});

test('per-command help is specific', async () => {
  assert.match(await help('run --help'), /--resume/);
  assert.match(await help('run --help'), /--config/);
  assert.match(await help('zeroshot --help'), /--prompt/);
  assert.match(await help('train --help'), /--setup/);
  assert.match(await help('train --help'), /linear-probe/);
  assert.match(await help('eval --help'), /--threshold-rule/);
  // --threshold is also the fallback of every rule (metrics.fixedThreshold in chooseThreshold)
  assert.match(
    (await help('eval --help')).replace(/\s+/g, ' '),
    /--threshold .*fallback of a finding with one class among its validation labels/,
  );
  assert.match(await help('predict --help'), /--checkpoint/);
  assert.match(await help('demo --help'), /--images/);
});

test('flags override the config file', () => {
  const f = join(tmp, 'exp.json');
  writeFileSync(
    f,
    JSON.stringify({ data: { cache: 'c1' }, seeds: [5, 6, 7], finetune: { epochs: 9, lrHead: 0.01 } }),
  );
  const c = configFromArgv({ config: f, seeds: '1,2', ftEpochs: 3, cache: 'c2' });
  assert.equal(c.seeds, [1, 2]);
  assert.is(c.finetune.epochs, 3);
  assert.is(c.finetune.lrHead, 0.01);
  assert.is(c.data.cache, 'c2');
  assert.equal(overridesFromArgv({}), {});
  const fixed = configFromArgv({ config: f, thresholdRule: 'fixed', threshold: 0.3 });
  assert.is(fixed.metrics.thresholdRule, 'fixed');
  assert.is(fixed.metrics.fixedThreshold, 0.3);
  assert.throws(
    () => configFromArgv({ config: f, seeds: '1,x' }),
    (e: Error) => e instanceof ConfigError && /--seeds/.test(e.message),
  );
});

test('invalid config: clear error, exit 2, nothing started', () => {
  const f = join(tmp, 'bad.json');
  writeFileSync(f, JSON.stringify({ data: { cache: 'x' }, seeds: [], finetune: { lrHead: -1 }, typo: 1 }));
  const r = runCli(['run', '--config', f, '--runs-dir', join(tmp, 'runs')]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /invalid config/);
  assert.match(r.err, /seeds/);
  assert.match(r.err, /finetune\.lrHead/);
  assert.match(r.err, /Unrecognized key.*typo/);
  assert.not.match(r.err, /run folder/);
  const missing = runCli(['run', '--config', join(tmp, 'nope.json')]);
  assert.is(missing.code, 2);
  assert.match(missing.err, /cannot read config file/);
  const notJson = join(tmp, 'notjson.json');
  writeFileSync(notJson, '{ seeds: ');
  assert.match(runCli(['run', '--config', notJson]).err, /not valid JSON/);
  const noCache = runCli(['run', '--seeds', '0']);
  assert.is(noCache.code, 2);
  assert.match(noCache.err, /--cache/);
});

test('what the parser refuses is a usage error: one line naming it and the help to read, exit 2', () => {
  const r = runCli(['frobnicate']);
  assert.is(r.code, 2, r.err);
  assert.equal(r.err.trim().split('\n'), [
    'error: Unknown argument: frobnicate (`cxrmask --help` lists the options)',
  ]);
  const o = runCli(['run', '--frobnicate-level', '3']);
  assert.is(o.code, 2, o.err);
  assert.match(
    o.err,
    /^error: Unknown argument: frobnicate-level \(`cxrmask run --help` lists the options\)\n$/,
  );
  const missing = runCli(['synth']);
  assert.is(missing.code, 2, missing.err);
  assert.match(
    missing.err,
    /^error: Missing required argument: out \(`cxrmask synth --help` lists the options\)\n$/,
  );
  const choice = runCli(['index', '--root', tmp, '--out', join(tmp, 'i'), '--uncertain', 'maybe']);
  assert.is(choice.code, 2, choice.err);
  assert.match(choice.err, /Given: "maybe", Choices: "zeros", "ones", "ignore" \(`cxrmask index --help`/);
  assert.not.match(choice.err, /Options:/, 'no help text before the error');
  // no command at all: the list of commands, then the one line
  const none = runCli([]);
  assert.is(none.code, 2);
  assert.match(none.err, /Commands:[\s\S]*\nerror: Choose a command \(see the list above\)\.\n$/);
});

test('resume of a folder that is not a run: clear error', () => {
  const r = runCli(['run', '--resume', tmp]);
  assert.is(r.code, 2);
  assert.match(r.err, /not a run folder/);
});

test('eval of a folder that is not a run, cache of an index that does not exist: exit 2 naming the path', () => {
  const run = join(tmp, 'no-such-run');
  const e = runCli(['eval', run]);
  assert.is(e.code, 2, e.err);
  assert.is(e.err, `error: ${run} is not a run folder (no config.json)\n`);
  const idx = join(tmp, 'no-such-index');
  const c = runCli([
    'cache',
    '--index',
    idx,
    '--root',
    tmp,
    '--chexmask',
    join(tmp, 'x.csv'),
    '--out',
    join(tmp, 'c'),
  ]);
  assert.is(c.code, 2, c.err);
  assert.is(c.err, `error: ${join(idx, 'index.jsonl')}: no index here (run \`cxrmask index\` first)\n`);
});

test('the help epilogue names docs that exist from where the user stands (an installed package too)', () => {
  assert.is(
    docsEpilogue('/app', '/app/node_modules/cxrmask'),
    'Docs: node_modules/cxrmask/README.md, node_modules/cxrmask/docs/experiments.md (configs, the grid, metrics) and the rest of node_modules/cxrmask/docs/',
  );
  assert.match(docsEpilogue('/src/cxrmask', '/src/cxrmask'), /^Docs: README\.md, docs\/experiments\.md /);
  // from a folder outside the package (the built bin, as npx runs it): every path it names opens from there
  const elsewhere = mkdtempSync(join(tmpdir(), 'cxrmask-epilogue-'));
  try {
    const r = spawnSync(process.execPath, [join(process.cwd(), 'dist', 'cli', 'main.js'), '--help'], {
      cwd: elsewhere,
      encoding: 'utf8',
    });
    assert.is(r.status, 0, r.stderr);
    // the epilogue is the end of the help, wrapped to the terminal width
    const line = r.stdout.slice(r.stdout.indexOf('Docs: ')).replace(/\s+/g, ' ');
    assert.ok(line.startsWith('Docs: '), r.stdout);
    const paths = line.match(/[^\s,]+(?:\.md|docs\/)/g) ?? [];
    assert.is(paths.length, 3, line);
    for (const p of paths) assert.ok(existsSync(resolve(elsewhere, p)), `${p} (from ${line})`);
  } finally {
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('one exit code per kind of error, whatever the command', async () => {
  const exitOf = async (err: Error): Promise<number | undefined> => {
    const before = process.exitCode;
    const write = process.stderr.write;
    process.exitCode = undefined;
    process.stderr.write = () => true;
    try {
      await runCommand(async () => {
        throw err;
      });
      return process.exitCode as number | undefined;
    } finally {
      process.stderr.write = write;
      process.exitCode = before;
    }
  };
  const zod = Object.assign(new Error('bad'), { name: 'ZodError' });
  assert.is(await exitOf(new DataError('bad-csv', 'broken')), 2);
  assert.is(await exitOf(new ConfigError('bad config')), 2);
  assert.is(await exitOf(new UsageError('bad usage')), 2);
  assert.is(await exitOf(zod), 2);
  assert.is(await exitOf(new InterruptedError('stopped')), 130);
  assert.is(await exitOf(new NativeError('torch failed', 'ERR_TORCH')), 1);
  assert.is(await exitOf(new Error('bug')), 1);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
