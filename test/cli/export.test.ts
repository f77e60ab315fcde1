/**
 * `cxrmask export` is all or nothing (tools/export_staging.py): a failed export over an existing one
 * leaves its files byte for byte as they were (it used to write the new tokenizer first, and the old
 * clip.pt with it still loaded and scored differently), and leaves no temp folder; a successful one
 * replaces the export and keeps the files of --out it does not write.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exporterArgs } from '../../ts/cli/export.js';
import { UsageError } from '../../ts/common/errors.js';
import { exitCodeOf } from '../../ts/common/report-error.js';
import { readSegmenterMeta } from '../../ts/model/meta.js';
import { tempDir } from '../data/helpers.js';
import { python } from '../explain/helpers.js';
import { MODEL_DIR, ROOT, requireModel } from '../native/helpers.js';
import { runCli } from './helpers.js';

const SEG_DIR = join(ROOT, 'models', 'seg-tiny');

/** Every file under `dir` (relative path → SHA-256 of its bytes). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** What sits beside `out` other than `out` itself (a temp or old folder left behind would show). */
const besides = (out: string) => readdirSync(dirname(out)).filter((f) => f !== 'ckpt');

/** An open_clip config of a small model of BiomedCLIP's kind (a timm ViT, a BERT with an MLP projection). */
const CONFIG = {
  model_cfg: {
    embed_dim: 64,
    vision_cfg: {
      timm_model_name: 'vit_tiny_patch16_224',
      timm_pool: '',
      timm_proj: 'linear',
      image_size: 224,
    },
    text_cfg: { hf_proj_type: 'mlp', hf_pooler_type: 'cls_last_hidden_state_pooler', context_length: 64 },
  },
  preprocess_cfg: {},
};

const CHECKPOINT = ['open_clip_config.json', 'vocab.txt', 'open_clip_pytorch_model.bin'] as const;

/**
 * A folder `ck` under `d` with the published files: CONFIG, the tiny model's vocab, and `files`'
 * contents in place of any of them (the weights are none unless given).
 */
function checkpointDir(
  d: string,
  files: Partial<Record<(typeof CHECKPOINT)[number], string | Buffer>> = {},
  ck = join(d, 'ckpt'),
): string {
  mkdirSync(ck, { recursive: true });
  const all = {
    'open_clip_config.json': JSON.stringify(CONFIG),
    'vocab.txt': readFileSync(join(MODEL_DIR, 'hf', 'vocab.txt')),
    'open_clip_pytorch_model.bin': 'not a checkpoint\n',
    ...files,
  };
  for (const f of CHECKPOINT) writeFileSync(join(ck, f), all[f]);
  return ck;
}

/** Runs Python `code` with `args` (the venv's torch); its stdout, or throws with its stderr. */
function py(code: string, ...args: string[]): string {
  const r = spawnSync(python(), ['-c', code, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

/** The tiny export's weights as a state dict (`torch.save` of its names and tensors): another model's. */
function tinyStateDict(path: string): string {
  requireModel();
  py(
    'import sys, torch; torch.save(torch.jit.load(sys.argv[1]).state_dict(), sys.argv[2])',
    join(MODEL_DIR, 'clip.pt'),
    path,
  );
  return path;
}

test('a failed `export --checkpoint` over an existing export leaves it byte for byte as it was', () => {
  requireModel();
  const d = tempDir();
  const out = join(d, 'exp');
  cpSync(MODEL_DIR, out, { recursive: true });
  writeFileSync(join(out, 'NOTES.txt'), 'mine\n');
  const before = snapshot(out);
  // A published-layout folder whose vocab.txt has the same tokens in another order and the weights of
  // another model: the export fails when it compares them with the model, after the tokenizer files
  // are made.
  const vocab = readFileSync(join(MODEL_DIR, 'hf', 'vocab.txt'), 'utf8')
    .trim()
    .split('\n');
  const ck = checkpointDir(d, {
    'vocab.txt': `${[...vocab.slice(0, 5), ...vocab.slice(5).reverse()].join('\n')}\n`,
    'open_clip_pytorch_model.bin': readFileSync(tinyStateDict(join(tempDir(), 'tiny.bin'))),
  });
  const r = runCli(['export', '--checkpoint', ck, '--out', out]);
  // another model's weights: the user's to fix, named with what differs
  assert.is(r.code, 2, r.err);
  const bin = join(ck, 'open_clip_pytorch_model.bin');
  assert.match(
    r.err,
    `error: ${bin}: not the weights of the model that open_clip_config.json and vocab.txt describe: `,
  );
  assert.match(
    r.err,
    / weights missing \(.*\); \d+ of another shape \(visual\.trunk\.cls_token: \[1, 1, 64\] in the file, \[1, 1, 192\] in the model, /,
  );
  assert.not.match(r.err, /the exporter refused its input/, 'one line: the exporter says what is wrong');
  assert.not.match(r.err, /Traceback/);
  assert.equal(snapshot(out), before);
  assert.equal(besides(out), ['exp']);
});

test('`export --checkpoint` with a damaged file: one line naming it and what is wrong, exit 2, no traceback', () => {
  requireModel();
  const d = tempDir();
  const clip = readFileSync(join(MODEL_DIR, 'clip.pt'));
  const cases: [Partial<Record<(typeof CHECKPOINT)[number], string | Buffer>>, string, string][] = [
    // an interrupted download
    [
      { 'open_clip_pytorch_model.bin': clip.subarray(0, 200_000) },
      'open_clip_pytorch_model.bin',
      'truncated or damaged (a torch zip archive that cannot be read)',
    ],
    [
      { 'open_clip_pytorch_model.bin': randomBytes(5000) },
      'open_clip_pytorch_model.bin',
      'not a PyTorch weights file (neither a torch zip archive nor a legacy torch file)',
    ],
    [
      { 'open_clip_config.json': '{"model_cfg": ' },
      'open_clip_config.json',
      'not JSON (Expecting value at line 1 column 15)',
    ],
    [
      { 'open_clip_config.json': '{}' },
      'open_clip_config.json',
      'not an open_clip config (no model_cfg object)',
    ],
  ];
  for (const [files, name, what] of cases) {
    const ck = checkpointDir(d, files);
    const out = join(d, 'out');
    const r = runCli(['export', '--checkpoint', ck, '--out', out]);
    assert.is(r.code, 2, r.err);
    assert.is(r.err, `error: ${join(ck, name)}: ${what}\n`);
    assert.not.ok(existsSync(out));
  }
});

test('the Python exporter: each damaged or foreign file of --checkpoint is named with what is wrong (exit 2)', () => {
  const d = tempDir();
  const empty = join(d, 'empty.bin');
  const nan = join(d, 'nan.bin');
  const list = join(d, 'list.bin');
  const notTensor = join(d, 'not-tensor.bin');
  py(
    [
      'import sys, torch',
      'torch.save({"a": torch.tensor([1.0, float("nan")])}, sys.argv[1])',
      'torch.save([torch.zeros(2)], sys.argv[2])',
      'torch.save({"a": [1, 2]}, sys.argv[3])',
      'torch.save({}, sys.argv[4])',
    ].join('\n'),
    nan,
    list,
    notTensor,
    empty,
  );
  const config = (patch: object) => JSON.stringify({ ...CONFIG, ...patch });
  const bin = 'open_clip_pytorch_model.bin';
  const cases: [Partial<Record<(typeof CHECKPOINT)[number], string | Buffer>>, string, string][] = [
    [{ [bin]: '' }, bin, 'empty file (not a PyTorch weights file)'],
    [{ [bin]: readFileSync(list) }, bin, 'not a state dict (a list, not names to tensors)'],
    [{ [bin]: readFileSync(notTensor) }, bin, "not a state dict ('a' holds a list, not a tensor)"],
    [{ [bin]: readFileSync(nan) }, bin, 'damaged: a holds NaN or infinite values'],
    [
      { 'open_clip_config.json': '[1]' },
      'open_clip_config.json',
      'not an open_clip config (a JSON array, not an object)',
    ],
    [
      { 'open_clip_config.json': Buffer.from([0xff, 0xfe, 0x7b]) },
      'open_clip_config.json',
      'not JSON (not UTF-8 text)',
    ],
    [
      { 'open_clip_config.json': config({ model_cfg: { ...CONFIG.model_cfg, vision_cfg: 'vit' } }) },
      'open_clip_config.json',
      'model_cfg.vision_cfg is not an object',
    ],
    [
      { 'open_clip_config.json': config({ preprocess_cfg: { mean: [0.5] } }) },
      'open_clip_config.json',
      'preprocess_cfg.mean is not a list of 3 numbers',
    ],
    [{ 'vocab.txt': 'a\nb\n' }, 'vocab.txt', 'lacks [PAD], [UNK], [CLS], [SEP] (not a BERT vocab)'],
    [
      {
        'open_clip_config.json': config({
          model_cfg: {
            ...CONFIG.model_cfg,
            vision_cfg: { ...CONFIG.model_cfg.vision_cfg, timm_model_name: 'no_such_vit' },
          },
        }),
        [bin]: readFileSync(empty),
      },
      'open_clip_config.json',
      'model_cfg does not describe an open_clip model (RuntimeError: Unknown model (no_such_vit))',
    ],
  ];
  const dirs = cases.map(([files], i) => checkpointDir(d, files, join(d, `ck${i}`)));
  // one Python for all of them: main() per folder, its exit code and what it wrote to stderr
  const got = JSON.parse(
    py(
      [
        'import contextlib, io, json, sys',
        `sys.path.insert(0, ${JSON.stringify(join(ROOT, 'tools'))})`,
        'import export_biomedclip as x',
        'res = []',
        'for ck in sys.argv[2:]:',
        '    err = io.StringIO()',
        '    with contextlib.redirect_stderr(err):',
        '        try:',
        '            code = x.main(["--checkpoint", ck, "--out", sys.argv[1]])',
        '        except SystemExit as e:',
        '            code = e.code',
        '    res.append([code, err.getvalue()])',
        'print(json.dumps(res))',
      ].join('\n'),
      join(d, 'out'),
      ...dirs,
    ),
  ) as [number, string][];
  cases.forEach(([, name, what], i) => {
    assert.equal(got[i], [2, `error: ${join(dirs[i] as string, name)}: ${what}\n`], `case ${i}`);
  });
  assert.not.ok(existsSync(join(d, 'out')));
});

test("a missing exporter script is the installation's fault (exit 1, naming it), not 'the exporter refused its input' (exit 2)", () => {
  // Python exits 2 for a script it cannot open, as the exporters do for input the user can fix
  const d = tempDir();
  const cases = [
    [{ segmenter: 'unet-tiny' as const }, 'segmenter_export.py'],
    [{ randomInit: 'tiny' as const }, 'export_biomedclip.py'],
    [{ checkpoint: d }, 'export_biomedclip.py'],
  ] as const;
  for (const [a, script] of cases) {
    let err: unknown = null;
    try {
      exporterArgs({ ...a, out: join(d, 'out') }, d);
    } catch (e) {
      err = e;
    }
    assert.instance(err, Error);
    assert.not.instance(err, UsageError);
    assert.is(exitCodeOf(err as Error), 1);
    assert.is(
      (err as Error).message,
      `the exporter ${join(d, script)} is missing: the cxrmask installation is incomplete (reinstall it)`,
    );
  }
  // the package's own are found
  assert.is(
    exporterArgs({ segmenter: 'unet-tiny', out: 'x' })[0],
    join(ROOT, 'tools', 'segmenter_export.py'),
  );
});

test('`export --checkpoint` with a missing or incomplete folder: one line naming what is missing, exit 2, no Python', () => {
  const d = tempDir();
  const gone = join(d, 'nonexist');
  let r = runCli(['export', '--checkpoint', gone, '--out', join(d, 'out')]);
  assert.is(r.code, 2, r.err);
  assert.is(
    r.err,
    `error: --checkpoint ${gone}: no such folder (it should hold open_clip_pytorch_model.bin, open_clip_config.json, vocab.txt)\n`,
  );
  const ck = join(d, 'ckpt');
  mkdirSync(ck);
  writeFileSync(join(ck, 'open_clip_config.json'), '{}');
  r = runCli(['export', '--checkpoint', ck, '--out', join(d, 'out')]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, `error: --checkpoint ${ck}: missing open_clip_pytorch_model.bin, vocab.txt (`);
  assert.is(r.err.trim().split('\n').length, 1, r.err);
  assert.not.ok(existsSync(join(d, 'out')));
});

test('the Python exporter alone: a missing checkpoint file is one line and exit 2, not a traceback', () => {
  const d = tempDir();
  const ck = join(d, 'ckpt');
  mkdirSync(ck);
  writeFileSync(join(ck, 'open_clip_config.json'), '{}');
  const run = (dir: string) =>
    spawnSync(
      python(),
      [join(ROOT, 'tools', 'export_biomedclip.py'), '--checkpoint', dir, '--out', join(d, 'out')],
      {
        encoding: 'utf8',
      },
    );
  let r = run(ck);
  assert.is(r.status, 2, r.stderr);
  assert.is(
    r.stderr,
    `error: --checkpoint ${ck}: missing open_clip_pytorch_model.bin, vocab.txt (a BiomedCLIP checkpoint folder as published holds open_clip_pytorch_model.bin, open_clip_config.json, vocab.txt)\n`,
  );
  r = run(join(d, 'nonexist'));
  assert.is(r.status, 2, r.stderr);
  assert.is(r.stderr, `error: --checkpoint ${join(d, 'nonexist')}: no such folder\n`);
});

test("the Python exporter: only a missing file of --checkpoint is the user's (exit 2); any other is a fault (exit 1)", () => {
  const d = tempDir();
  const ck = checkpointDir(d);
  // `missing` goes away after the exporter's own check: a file of the package or venv (a fault of the
  // installation) or a file of the checkpoint folder (removed meanwhile)
  const run = (args: string[], missing: string) =>
    spawnSync(
      python(),
      [
        '-c',
        [
          'import sys',
          `sys.path.insert(0, ${JSON.stringify(join(ROOT, 'tools'))})`,
          'import export_biomedclip as x',
          'def gone(*a, **k):',
          '    raise FileNotFoundError(2, "No such file or directory", sys.argv[1])',
          // the first step of each source
          'x.generated_vocab = x.read_vocab = gone',
          'x.main(sys.argv[2:])',
        ].join('\n'),
        missing,
        ...args,
      ],
      { encoding: 'utf8' },
    );
  const asset = join(d, 'venv', 'site-packages', 'open_clip', 'asset.json');
  for (const args of [
    ['--random-init', 'tiny', '--out', join(d, 'a')],
    ['--checkpoint', ck, '--out', join(d, 'b')],
  ]) {
    const r = run(args, asset);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, /Traceback[\s\S]*FileNotFoundError: \[Errno 2\] No such file or directory: /);
    assert.not.match(r.stderr, /^error: /m);
  }
  const r = run(['--checkpoint', ck, '--out', join(d, 'c')], join(ck, 'vocab.txt'));
  assert.is(r.status, 2, r.stderr);
  assert.is(r.stderr, `error: ${join(ck, 'vocab.txt')}: no such file (No such file or directory)\n`);
  assert.equal(readdirSync(d).sort(), ['ckpt']);
});

test('a segmenter export that fails after writing seg.pt leaves the existing one as it was', () => {
  const d = tempDir();
  const out = join(d, 'seg');
  cpSync(SEG_DIR, out, { recursive: true });
  const before = snapshot(out);
  // seg_loss runs after seg.pt is saved and reloaded: a failure there is a failure mid-export
  const script = [
    'import sys',
    `sys.path.insert(0, ${JSON.stringify(join(ROOT, 'tools'))})`,
    'import segmenter_export as s',
    'def boom(*a):',
    '    raise RuntimeError("injected failure")',
    's.seg_loss = boom',
    's.main(["--random-init", "unet-tiny", "--out", sys.argv[1], "--seed", "7"])',
  ].join('\n');
  const r = spawnSync(python(), ['-c', script, out], { encoding: 'utf8' });
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /RuntimeError: injected failure/);
  assert.equal(snapshot(out), before);
  assert.equal(besides(out), ['seg']);
});

test('a successful export replaces the existing one and keeps the files of --out it does not write', () => {
  const d = tempDir();
  const out = join(d, 'seg');
  cpSync(SEG_DIR, out, { recursive: true });
  writeFileSync(join(out, 'NOTES.txt'), 'mine\n');
  const before = snapshot(out);
  const r = runCli(['export', '--segmenter', 'unet-tiny', '--out', out, '--seed', '7']);
  assert.is(r.code, 0, r.err);
  const after = snapshot(out);
  assert.equal(Object.keys(after).sort(), Object.keys(before).sort());
  assert.is(after['NOTES.txt'], before['NOTES.txt']);
  assert.is.not(after['reference_logits.bin'], before['reference_logits.bin'], 'seed 7 wrote new weights');
  assert.is(readSegmenterMeta(out).seed, 7);
  assert.equal(besides(out), ['seg']);
});

test.run();
