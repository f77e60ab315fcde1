/**
 * The CLI as the tests drive it: `cxrmask` in a subprocess through tsx (no build needed), `cxrmask serve`
 * started and awaited until it listens, and the small synthetic tree several command tests begin with.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** The TypeScript entry point of the CLI. */
export const MAIN = join(process.cwd(), 'ts', 'cli', 'main.ts');

export interface CliResult {
  /** The exit status; null when killed (see signal). */
  code: number | null;
  out: string;
  err: string;
  signal: NodeJS.Signals | null;
  /** The watchdog (`timeoutMs`) killed it, or it could not start. */
  timedOut: boolean;
}

/**
 * Runs `cxrmask ...args` to the end, colours off. `timeoutMs` is a watchdog for the cases whose defect
 * was a hang (a FIFO, /dev/zero): the test then fails instead of blocking the suite.
 */
export function runCli(args: string[], o: { timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0' },
    timeout: o.timeoutMs,
  });
  return { code: r.status, out: r.stdout, err: r.stderr, signal: r.signal, timedOut: r.error !== undefined };
}

/** A running server: its child process, its base URL, and what it has written to stdout and stderr so far. */
export interface Served {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
}

/** Starts a `cxrmask serve` command line (any executable) and resolves with its URL once it listens. */
export function startServe(
  cmd: string,
  args: string[],
  o: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<Served> {
  const child = spawn(cmd, args, {
    cwd: o.cwd,
    env: o.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
  });
  return new Promise((ok, fail) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) ok({ child, url: m[1]!, stdout: () => out, stderr: () => err });
    });
    child.on('exit', (code) => fail(new Error(`serve exited (${code}) before listening:\n${err}`)));
  });
}

/** `cxrmask serve ...args` from this checkout's TypeScript (args after `serve`). */
export function serveCli(args: string[]): Promise<Served> {
  return startServe(process.execPath, ['--import', 'tsx', MAIN, 'serve', ...args], { cwd: process.cwd() });
}

/** `cxrmask synth` of a 24-image 120×140 tree into `out` (the quick start of several command tests). */
export function smallSynthArgs(out: string): string[] {
  return [
    'synth',
    '--out',
    out,
    '--n',
    '24',
    '--seed',
    '3',
    '--width',
    '120',
    '--height',
    '140',
    '--no-progress',
  ];
}
