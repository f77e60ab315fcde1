// The GPU check's runner (scripts/gpu-check.sh starts it after unpacking the carry): each section of
// scripts/gpu-check-sections.mjs runs in its own process with a timeout taken from one deadline for the
// whole check (CXRMASK_GPU_CHECK_DEADLINE, epoch ms, else now + CXRMASK_GPU_CHECK_SECONDS, default 540).
// A failed or timed-out section prints a FAIL line and the next one still runs. $OUT/results.json is
// rewritten (temp + rename) as each section ends; $OUT/gpu-check.log gets every line. Nothing else is
// written under $OUT. CXRMASK_GPU_CHECK_DEVICE=cpu runs the same sections on CPU (the dry run).
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '..', '..');
const dev = process.env.CXRMASK_GPU_CHECK_DEVICE ?? 'cuda';
const start = Date.now();
const totalS = Number(process.env.CXRMASK_GPU_CHECK_SECONDS ?? 540);
const deadline = Number(process.env.CXRMASK_GPU_CHECK_DEADLINE ?? start + totalS * 1000);
const out = resolve(process.env.OUT || join(root, '.cache', 'gpu-out'));
mkdirSync(out, { recursive: true });
const logFile = join(out, 'gpu-check.log');
const resultsFile = join(out, 'results.json');
// Each section's share of the time left: its expected seconds on an H100 (docs/native.md), so a
// section that ends early leaves its time to the later ones.
const PLAN = [
  ['env', 10],
  ['parity', 30],
  ['export', 80],
  ['forward', 45],
  ['pipeline', 110],
  ['attribution', 35],
  ['distributed', 20],
  ['segmenter', 30],
  ['serve', 80],
];
const only = process.env.CXRMASK_GPU_CHECK_ONLY?.split(',');
// CXRMASK_GPU_CHECK_ONLY=a,b: those sections, in that order (a rerun of what failed).
const plan = only ? only.map((n) => PLAN.find(([k]) => k === n) ?? [n, 30]) : PLAN;

function log(text) {
  process.stdout.write(text);
  appendFileSync(logFile, text);
}
const say = (line) => log(`[gpu-check] ${line}\n`);

const results = {
  device: dev,
  torch: null,
  deadlineSeconds: Math.round((deadline - start) / 1000),
  tf32: { parity: 'off (setTf32(false))', speed: "torch's defaults (cuDNN TF32 on, cuBLAS TF32 off; bf16 rows autocast)" },
  sections: {},
  table: [],
};
const setupFile = process.env.CXRMASK_GPU_CHECK_SETUP;
if (setupFile && existsSync(setupFile)) {
  try {
    results.sections.setup = JSON.parse(readFileSync(setupFile, 'utf8'));
  } catch {}
}
function writeResults() {
  const tmp = `${resultsFile}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(results, null, 1)}\n`);
  renameSync(tmp, resultsFile);
}

/** One section in its own process group, killed whole at its timeout. */
function runSection(name, timeoutS) {
  const resultFile = join(tmpdir(), `cxrmask-section-${process.pid}-${name}.json`);
  rmSync(resultFile, { force: true });
  const env = { ...process.env, CXRMASK_GPU_CHECK_SECTION_DEADLINE: String(Date.now() + timeoutS * 1000), CXRMASK_GPU_CHECK_RESULT: resultFile };
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(root, 'scripts', 'gpu-check-sections.mjs'), name], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => log(d.toString()));
    child.stderr.on('data', (d) => log(d.toString()));
    let timedOut = false;
    // the child's own timers stop its children first; this is the backstop
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, (timeoutS + 3) * 1000);
    const finish = (code, error) => {
      clearTimeout(timer);
      try {
        process.kill(-child.pid, 'SIGKILL'); // whatever the section left running
      } catch {}
      let r = null;
      try {
        r = JSON.parse(readFileSync(resultFile, 'utf8'));
      } catch {}
      rmSync(resultFile, { force: true });
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      if (!r) {
        const why = timedOut ? `timed out after ${timeoutS.toFixed(0)} s` : error ? error.message : `exited ${code} without a result`;
        r = { status: 'fail', note: why, rows: [], facts: {} };
      } else if (code !== 0 && r.status === 'ok') r.status = 'fail';
      done({ ...r, seconds });
    };
    child.once('error', (e) => finish(null, e));
    child.once('exit', (code, signal) => setTimeout(() => finish(code ?? signal, null), 200));
  });
}

say(`device ${dev}; deadline in ${results.deadlineSeconds} s; sections ${plan.map(([n]) => n).join(', ')}; log ${logFile}`);
writeResults();
let failed = 0;
for (let i = 0; i < plan.length; i++) {
  const [name, expected] = plan[i];
  const leftS = (deadline - Date.now()) / 1000 - 3;
  const rest = plan.slice(i).reduce((s, [, e]) => s + e, 0);
  const timeoutS = Math.max(0, (leftS * expected) / rest);
  if (timeoutS < 3) {
    results.sections[name] = { status: 'fail', seconds: 0, note: 'no time left before the deadline' };
    say(`FAIL ${name}: no time left before the deadline`);
    failed++;
    writeResults();
    continue;
  }
  say(`--- ${name} (timeout ${timeoutS.toFixed(0)} s, ${leftS.toFixed(0)} s left)`);
  const r = await runSection(name, timeoutS);
  results.sections[name] = { status: r.status, seconds: r.seconds, note: r.note };
  if (r.facts?.torch) results.torch = r.facts.torch;
  if (r.facts?.device) results.device = r.facts.device;
  if (r.facts?.tf32Default) results.tf32.default = r.facts.tf32Default;
  results.table.push(...(r.rows ?? []));
  if (r.status === 'fail') failed++;
  say(`${r.status === 'ok' ? 'ok  ' : 'FAIL'} section ${name}: ${r.seconds} s${r.note ? ` (${r.note})` : ''}`);
  writeResults();
}
if (results.sections.setup?.status === 'fail') failed++;

const f = (v) => (v == null ? 'n/a' : v >= 100 ? v.toFixed(0) : v.toFixed(1));
log('\n| work | unit | dtype | batch | addon | eager | addon/eager |\n|---|---|---|---|---|---|---|\n');
for (const r of results.table)
  log(`| ${r.work} | ${r.unit} | ${r.dtype} | ${r.batch} | ${f(r.addon)} | ${f(r.eager)} | ${r.ratio ? `${r.ratio.toFixed(2)}×` : 'n/a'} |\n`);
say(`${((Date.now() - start) / 1000).toFixed(0)} s; results in ${resultsFile}`);
say(failed ? `${failed} section(s) FAILED` : 'all GPU checks passed');
process.exit(failed ? 1 : 0);
