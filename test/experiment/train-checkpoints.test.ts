/**
 * How a training run writes its checkpoints: each one staged once (one temp file renamed onto the
 * final name; a wrapping atomic write around the model's own atomic save staged every checkpoint
 * twice: a second temp file of the checkpoint's size, ~2.3 GB with BiomedCLIP's Adam state), and a
 * symlink planted in the run's folder replaced by the file, its target left alone.
 */
import fs, {
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { trainWithCheckpoints } from '../../ts/experiment/train.js';
import { Classifier } from '../../ts/model/classifier.js';

/** `fn` with every fs.renameSync recorded (from, to), as the names the renames went to. */
async function withRenamesRecorded<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; renames: [string, string][] }> {
  const real = fs.renameSync;
  const renames: [string, string][] = [];
  fs.renameSync = ((from: fs.PathLike, to: fs.PathLike) => {
    renames.push([String(from), String(to)]);
    real(from, to);
  }) as typeof real;
  syncBuiltinESMExports();
  try {
    return { value: await fn(), renames };
  } finally {
    fs.renameSync = real;
    syncBuiltinESMExports();
  }
}

test('each checkpoint is staged once (one temp file, one rename), and a link planted in the run folder is replaced, not followed', async () => {
  const root = mkdtempSync(join(tmpdir(), 'cxrmask-train-ckpt-'));
  const dir = join(root, 'cells', 'x');
  fs.mkdirSync(dir, { recursive: true });
  const D = 6;
  const c = await Classifier.create({ inputDim: D, device: 'cpu', seed: 3 });
  try {
    // someone else's files, linked from the run folder
    for (const f of ['best.ckpt', 'epoch-1.ckpt']) {
      writeFileSync(join(root, `theirs-${f}`), 'theirs');
      symlinkSync(join(root, `theirs-${f}`), join(dir, f));
    }
    const { value: st, renames } = await withRenamesRecorded(() =>
      trainWithCheckpoints(c, {
        dir,
        epochs: 2,
        batchSize: 4,
        seed: 0,
        trainIdx: Array.from({ length: 8 }, (_, i) => i),
        valIdx: Array.from({ length: 6 }, (_, i) => 8 + i),
        source: async (idx: number[]) => ({
          x: Float32Array.from(idx.flatMap((i) => Array.from({ length: D }, (_, j) => Math.cos(i + j)))),
          n: idx.length,
          labels: Float32Array.from(idx.flatMap((i) => [i % 2, 1, 0, (i >> 1) % 2, 0])),
          labelMask: new Float32Array(idx.length * 5).fill(1),
        }),
        selection: 'loss',
      }),
    );
    assert.ok(st.done);
    const ckptRenames = renames.filter(([, to]) => /\.ckpt/.test(basename(to)));
    for (const [from, to] of ckptRenames) {
      assert.ok(to.endsWith('.ckpt'), `a checkpoint was renamed onto a temp name first: ${from} -> ${to}`);
      assert.match(basename(from), new RegExp(`^${basename(to).replace('.', '\\.')}\\.tmp-${process.pid}-`));
    }
    const finals = ckptRenames.map(([, to]) => basename(to));
    assert.ok(
      finals.includes('epoch-1.ckpt') && finals.includes('epoch-2.ckpt') && finals.includes('best.ckpt'),
    );
    assert.is(new Set(finals.filter((f) => f.startsWith('epoch'))).size, 2);
    // the planted links are plain checkpoints now; what they pointed at is untouched
    assert.ok(lstatSync(join(dir, 'best.ckpt')).isFile(), 'best.ckpt is still a link');
    assert.is(readFileSync(join(root, 'theirs-best.ckpt'), 'utf8'), 'theirs');
    assert.is(readFileSync(join(root, 'theirs-epoch-1.ckpt'), 'utf8'), 'theirs');
    assert.equal(readdirSync(dir).sort(), ['best.ckpt', 'epoch-2.ckpt', 'state.json']);
    const back = await Classifier.create({ inputDim: D, device: 'cpu', seed: 9 });
    await back.load(join(dir, 'epoch-2.ckpt'));
    await back.dispose();
  } finally {
    await c.dispose();
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
