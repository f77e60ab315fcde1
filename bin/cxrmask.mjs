#!/usr/bin/env node
// The `cxrmask` bin: checks the Node version before anything that needs a newer one (yargs and its
// dependencies) is loaded, then runs the CLI (dist/cli/main.js's main).
import { nodeVersionProblem } from '../scripts/node-version.mjs';

const problem = nodeVersionProblem();
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
const { main } = await import('../dist/cli/main.js');
await main();
