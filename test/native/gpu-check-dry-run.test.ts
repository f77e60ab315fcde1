/**
 * The GPU check's CPU dry run, end to end: every section of scripts/gpu-check-sections.mjs (env, parity
 * with TF32 off, export, forward, pipeline, attribution, data parallel, segmenter, serve) runs on CPU
 * under one deadline and writes $OUT/results.json with a row per measured work, addon and eager
 * columns filled, and $OUT/gpu-check.log, and nothing else under $OUT. A failing section fails alone;
 * the deadline is one for the whole check. Host buffers JS still holds at exit are released during
 * static destruction; they once found the addon's pool already destroyed and corrupted the heap
 * ("malloc_consolidate(): unaligned fastbin chunk detected", abort, exit 134).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, requireModel } from './helpers.js';

interface Results {
  device: string;
  torch: string | null;
  deadlineSeconds: number;
  tf32: { parity: string; speed: string };
  sections: Record<string, { status: 'ok' | 'fail' | 'skip'; seconds: number; note: string }>;
  table: {
    work: string;
    unit: string;
    dtype: string;
    batch: number;
    addon: number;
    eager: number;
    ratio: number;
  }[];
}

function check(env: Record<string, string>, timeoutMs = 2_500_000) {
  const out = mkdtempSync(join(tmpdir(), 'cxrmask-gpucheck-out-'));
  const work = mkdtempSync(join(tmpdir(), 'cxrmask-gpucheck-work-'));
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/gpu-check.mjs')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
    env: { ...process.env, CXRMASK_GPU_CHECK_DEVICE: 'cpu', OUT: out, CXRMASK_GPU_CHECK_WORK: work, ...env },
  });
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
  const files = readdirSync(out).sort();
  const logText = readFileSync(join(out, 'gpu-check.log'), 'utf8');
  rmSync(out, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
  return { r, results, files, logText, tail: `${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}` };
}

test('gpu-check CPU dry run: every section passes, results.json has each row with eager fp32, exit 0', () => {
  requireModel();
  // The deadline is generous here: CI machines are shared; on the GPU it is 540 s.
  const { r, results, files, logText, tail } = check({ CXRMASK_GPU_CHECK_SECONDS: '2400' });
  assert.not.match(r.stderr, /malloc|free\(\)|corrupt|double free/, tail);
  assert.is(r.status, 0, `exit ${r.status ?? r.signal}: ${tail}`);
  assert.match(r.stdout, /all GPU checks passed/, tail);
  assert.equal(files, ['gpu-check.log', 'results.json'], 'nothing else under $OUT');
  assert.match(logText, /TF32 off for the parity checks/);
  assert.match(logText, /all GPU checks passed/, 'the log holds the whole output');
  assert.ok(results.device.startsWith('cpu'), results.device);
  assert.match(String(results.torch), /^2\.11/);
  assert.is(results.deadlineSeconds, 2400);
  assert.match(results.tf32.parity, /off/);
  const names = [
    'env',
    'parity',
    'export',
    'forward',
    'pipeline',
    'attribution',
    'distributed',
    'segmenter',
    'serve',
  ];
  assert.equal(Object.keys(results.sections), names);
  for (const n of names) {
    const s = results.sections[n]!;
    assert.is(s.status, 'ok', `${n}: ${s.note}`);
    assert.ok(s.seconds > 0 && s.seconds < 2400, `${n}: ${s.seconds} s`);
  }
  const want = [
    'image forward',
    'JFT train step',
    'LP features from cache records',
    'pipeline epoch (records -> JFT train)',
    'attribution (IG, 8 steps)',
    'segmenter train (unet-tiny)',
    'serve (JPEG -> segment -> overlay -> score)',
  ];
  for (const w of want) {
    const rows = results.table.filter((x) => x.work === w);
    assert.ok(rows.length >= 1, `row ${w}`);
    for (const x of rows) {
      assert.ok(x.addon > 0 && x.eager > 0, `${w}: addon ${x.addon}, eager ${x.eager}`);
      assert.ok(Math.abs(x.ratio - x.addon / x.eager) < 1e-9, `${w}: ratio`);
      assert.ok(x.batch >= 1 && x.unit.length > 0, w);
    }
  }
  assert.ok(results.table.some((x) => x.work === 'image forward' && x.dtype === 'fp32'));
});

test('gpu-check: a failing section fails alone, the next one runs; the deadline is one for the whole check', () => {
  requireModel();
  // no exports in the fresh work folder: forward fails (no fallback to other models), env still passes
  const a = check({ CXRMASK_GPU_CHECK_ONLY: 'forward,env', CXRMASK_GPU_CHECK_SECONDS: '300' });
  assert.is(a.r.status, 1, a.tail);
  assert.is(a.results.sections['forward']!.status, 'fail');
  assert.match(a.logText, /FAIL exports present/);
  assert.is(a.results.sections['env']!.status, 'ok', a.results.sections['env']!.note);
  assert.match(a.r.stdout, /1 section\(s\) FAILED/);
  // a deadline already spent: every section fails at once with a reason, results.json is still written
  const b = check({ CXRMASK_GPU_CHECK_ONLY: 'env,parity', CXRMASK_GPU_CHECK_SECONDS: '2' }, 60_000);
  assert.is(b.r.status, 1, b.tail);
  for (const n of ['env', 'parity']) {
    assert.is(b.results.sections[n]!.status, 'fail');
    assert.match(b.results.sections[n]!.note, /no time left/);
  }
});

test.run();
