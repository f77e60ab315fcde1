/**
 * A training step that never reads the device before its optimizer step: gradient clipping with the
 * factor kept on the device, AdamW's step counts advanced by one multi-tensor add, and the loss read
 * lazily (readLoss false; a later reading step or readLosses returns every unread loss). Checked against
 * PyTorch: clip_grad_norm_ + torch.optim.AdamW on the same weights and batches, step by step.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pythonExe as python } from '../../bench/common.js';
import { LOSS_READ_EVERY, trainWithCheckpoints } from '../../ts/experiment/train.js';
import { Classifier } from '../../ts/model/classifier.js';

const D = 8;
const N = 4;

function batchAt(k: number): { x: Float32Array; y: Float32Array } {
  return {
    x: Float32Array.from({ length: N * D }, (_, i) => Math.sin(i * 0.7 + k) * (1 + k)),
    y: Float32Array.from({ length: N * 5 }, (_, i) => ((i * 7 + k) % 3 === 0 ? 1 : 0)),
  };
}

test('clip + AdamW with lazily read losses match torch (clip_grad_norm_ + AdamW) step by step', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-sync-'));
  const c = await Classifier.create({
    inputDim: D,
    device: 'cpu',
    lrHead: 0.05,
    weightDecay: 0.1,
    gradClip: 0.3,
    seed: 11,
  });
  try {
    await c.save(join(dir, 'before.ckpt'));
    const reads = [false, false, true, false, false, true, false];
    const losses: number[] = [];
    let lastNorm = Number.NaN;
    for (let k = 0; k < reads.length; k++) {
      const { x, y } = batchAt(k);
      const r = await c.trainStep(x, N, y, null, { readLoss: reads[k]! });
      assert.is(r.step, k + 1);
      if (reads[k]) {
        assert.is(r.loss, r.losses[r.losses.length - 1]);
        assert.ok(Number.isFinite(r.gradNorm));
        lastNorm = r.gradNorm;
      } else {
        assert.ok(Number.isNaN(r.loss) && Number.isNaN(r.gradNorm));
        assert.equal(r.losses, []);
      }
      losses.push(...r.losses);
    }
    assert.is(losses.length, 6, 'losses read by the reading steps');
    const rest = await c.readLosses();
    assert.is(rest.losses.length, 1);
    losses.push(...rest.losses);
    assert.equal((await c.readLosses()).losses, [], 'a second read returns nothing new');
    await c.save(join(dir, 'after.ckpt'));
    const batches = reads.map((_, k) => {
      const { x, y } = batchAt(k);
      return [Array.from(x), Array.from(y)];
    });
    const script = [
      'import sys, json, torch, torch.nn.functional as F',
      'd, batches = sys.argv[1], json.loads(sys.argv[2])',
      'get = lambda f, k: torch.jit.load(f).params._c.getattr(k)',
      "w, b = [get(d + '/before.ckpt', k).clone().requires_grad_() for k in ('head.weight', 'head.bias')]",
      'opt = torch.optim.AdamW([w, b], lr=0.05, weight_decay=0.1)',
      'losses, norms = [], []',
      'for xs, ys in batches:',
      `    x = torch.tensor(xs, dtype=torch.float32).reshape(${N}, ${D}); y = torch.tensor(ys, dtype=torch.float32).reshape(${N}, 5)`,
      '    opt.zero_grad(); loss = F.binary_cross_entropy_with_logits(x @ w.T + b, y); loss.backward()',
      '    norms.append(torch.nn.utils.clip_grad_norm_([w, b], 0.3).item()); opt.step(); losses.append(loss.item())',
      "ref = [get(d + '/after.ckpt', k) for k in ('head.weight', 'head.bias')]",
      'print(json.dumps({"losses": losses, "norms": norms, "diff": max((a - r).abs().max().item() for a, r in zip((w, b), ref))}))',
    ].join('\n');
    const py = spawnSync(python(), ['-c', script, dir, JSON.stringify(batches)], { encoding: 'utf8' });
    assert.is(py.status, 0, py.stderr);
    const ref = JSON.parse(py.stdout) as { losses: number[]; norms: number[]; diff: number };
    assert.ok(
      ref.norms.some((g) => g > 0.3),
      'the batches never needed clipping: the test proves nothing',
    );
    assert.ok(ref.diff <= 1e-6, `weights vs torch after ${reads.length} steps: max |diff| ${ref.diff}`);
    for (let k = 0; k < losses.length; k++)
      assert.ok(
        Math.abs(losses[k]! - ref.losses[k]!) <= 1e-6,
        `step ${k + 1}: ${losses[k]} vs ${ref.losses[k]}`,
      );
    assert.ok(Math.abs(lastNorm - ref.norms[5]!) <= 1e-5, `grad norm ${lastNorm} vs ${ref.norms[5]}`);
  } finally {
    await c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readLoss is validated; a reading step returns the unread losses before its own', async () => {
  const c = await Classifier.create({ inputDim: D, device: 'cpu', seed: 12 });
  try {
    const { x, y } = batchAt(0);
    assert.throws(() => c.trainStep(x, N, y, null, { readloss: false } as never), /readloss/);
    await c.trainStep(x, N, y, null, { readLoss: false });
    const r = await c.trainStep(x, N, y);
    assert.is(r.losses.length, 2);
    assert.is((await c.trainStep(x, N, y)).losses.length, 1);
  } finally {
    await c.dispose();
  }
});

test('trainWithCheckpoints reads the loss once per interval and still records the exact epoch mean', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxrmask-sync-'));
  const c = await Classifier.create({ inputDim: D, device: 'cpu', lrHead: 0.01, seed: 13 });
  try {
    const rows = 150;
    const feats = (i: number) => Array.from({ length: D }, (_, j) => Math.sin(i * 1.3 + j));
    const label = (i: number) => Array.from({ length: 5 }, (_, k) => ((i + k) % 2 === 0 ? 1 : 0));
    const seen: { n: number; readLoss: boolean; losses: number[] }[] = [];
    const step = c.trainStep.bind(c);
    c.trainStep = async (x, n, labels, mask, options) => {
      const r = await step(x, n, labels, mask, options);
      seen.push({ n, readLoss: options?.readLoss !== false, losses: r.losses });
      return r;
    };
    const st = await trainWithCheckpoints(c, {
      dir,
      epochs: 1,
      batchSize: 2, // 75 steps: reads at 20, 40, 60 and the last
      seed: 0,
      trainIdx: Array.from({ length: rows }, (_, i) => i),
      valIdx: Array.from({ length: 10 }, (_, i) => rows + i),
      source: async (idx) => ({
        x: Float32Array.from(idx.flatMap(feats)),
        n: idx.length,
        labels: Float32Array.from(idx.flatMap(label)),
        labelMask: new Float32Array(idx.length * 5).fill(1),
      }),
      selection: 'loss',
    });
    assert.is(seen.length, 75);
    const reads = seen.filter((s) => s.readLoss).length;
    assert.is(reads, Math.ceil(75 / LOSS_READ_EVERY), 'one read per interval (and the last step)');
    const all = seen.flatMap((s) => s.losses);
    assert.is(all.length, 75, "every step's loss was read exactly once");
    const mean = all.reduce((a, l, i) => a + l * seen[i]!.n, 0) / rows;
    assert.ok(Math.abs(st.history[0]!.trainLoss - mean) < 1e-12, `${st.history[0]!.trainLoss} vs ${mean}`);
  } finally {
    await c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
