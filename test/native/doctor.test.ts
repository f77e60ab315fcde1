/** `cxrmask doctor [--json]` command module. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import yargs from 'yargs';
import doctor from '../../ts/cli/doctor.js';

async function run(args: string[]): Promise<string> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    await yargs(args).command(doctor).strict().parseAsync();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

test('doctor --json has torch.version and cuda.available', async () => {
  const d = JSON.parse(await run(['doctor', '--json'])) as {
    ok: boolean;
    torch: { version: string };
    cuda: { available: boolean };
  };
  assert.ok(d.ok);
  assert.match(d.torch.version, /^\d+\.\d+/);
  assert.type(d.cuda.available, 'boolean');
});

test('doctor prints a readable summary', async () => {
  const text = await run(['doctor']);
  assert.match(text, /torch\s+\d+\.\d+/);
  assert.match(text, /blas\s+\S+/);
  assert.match(text, /addon\s+.*cxrmask_native\.node/);
});

test.run();
