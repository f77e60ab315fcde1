#!/usr/bin/env node
// The `cxrmask` bin: checks the Node version before anything that needs a newer one (yargs and its
// dependencies) is loaded, then runs the CLI (dist/cli/main.js's main).
import { nodeVersionProblem } from '../scripts/node-version.mjs';

const problem = nodeVersionProblem();
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
let cli;
try {
  cli = await import('../dist/cli/main.js');
} catch (e) {
  // yargs and the CLI's core are a few dozen files, opened at once
  if (e?.code !== 'EMFILE' && e?.code !== 'ENFILE') throw e;
  process.stderr.write('error: cannot start: too many open files; raise the limit (e.g. ulimit -n 1024)\n');
  process.exit(2);
}
await cli.main();
