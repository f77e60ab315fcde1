// Loads the library (dist/index.js) and every CLI module under dist/cli/ but main.js, as running each
// command would, so that a package missing from this copy (a carry without zod or sharp) is named now,
// before any work starts: `--help` alone loads only the command list. Prints the first failure, exit 1.
// main.js is left out: importing it runs the CLI.
import { readdirSync } from 'node:fs';

const dist = new URL('../dist/', import.meta.url);
const modules = [
  'index.js',
  ...readdirSync(new URL('cli/', dist))
    .filter((f) => f.endsWith('.js') && f !== 'main.js')
    .sort()
    .map((f) => `cli/${f}`),
];
for (const m of modules) {
  try {
    await import(new URL(m, dist).href);
  } catch (e) {
    console.error(`dist/${m}: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}
console.log(`${modules.length} modules of dist/ load`);
