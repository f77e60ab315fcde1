/**
 * `npm run bench [-- <name> [args...]]`: runs bench/<name>.ts (native: addon vs Python PyTorch;
 * data: sharp pipeline vs PIL; pipeline: cache → addon → model throughput; serve: JPEG → segment +
 * overlay + classify, in-process and over HTTP, vs PIL + torch.jit; attribution: maps/s vs PyTorch),
 * or every bench in turn
 * with its defaults.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [name, ...rest] = process.argv.slice(2);
const names = name ? [name] : ['native', 'data', 'pipeline', 'serve', 'attribution'];
let status = 0;
for (const n of names) {
  const file = join(here, `${n}.ts`);
  if (!existsSync(file)) {
    process.stderr.write(`[bench] no bench/${n}.ts\n`);
    status = 1;
    continue;
  }
  process.stderr.write(`[bench] ${n}\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...(name ? rest : [])], {
    stdio: 'inherit',
  });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
