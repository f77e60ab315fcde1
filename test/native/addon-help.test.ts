/** The "cannot load the addon" advice: safe from a consumer's project, cmake-js only in a clone. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonHelp, isSourceCheckout, packageRoot } from '../../ts/native.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-addon-help-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('an installed package is told `npx cxrmask setup`, never cmake-js (which runs in the consumer project)', () => {
  const help = addonHelp(false);
  assert.match(help, '`npx cxrmask setup`');
  assert.match(help, 'LIBTORCH=/path/to/libtorch npx cxrmask setup');
  // `npx cmake-js rebuild` from the consumer's project removes the project's own build/ folder
  assert.not.match(help, /cmake-js|scripts\/setup\.sh/);
});

test('a clone also gets the raw cmake-js and setup.sh advice, each with a cd to the clone', () => {
  // a clone linked into a project (npm link, file:) is read from that project's folder, where a bare
  // `npx cmake-js rebuild` would wipe the project's build/
  const help = addonHelp(true, '/src/cxrmask');
  assert.match(help, '`npx cxrmask setup`');
  assert.match(help, '`cd /src/cxrmask && npx cmake-js compile`');
  assert.match(help, '`cd /src/cxrmask && bash scripts/setup.sh`');
  assert.not.match(help, /(?<!&& )npx cmake-js|(?<!&& )bash scripts/);
});

test('isSourceCheckout: .git (a folder, or a worktree file) or ts/ make a clone; an installed copy is neither', () => {
  const installed = join(tmp, 'node_modules', 'cxrmask');
  mkdirSync(join(installed, 'dist'), { recursive: true });
  assert.is(isSourceCheckout(installed), false);
  const worktree = join(tmp, 'wt');
  mkdirSync(worktree);
  writeFileSync(join(worktree, '.git'), 'gitdir: /elsewhere\n');
  assert.is(isSourceCheckout(worktree), true);
  const src = join(tmp, 'src');
  mkdirSync(join(src, 'ts'), { recursive: true });
  assert.is(isSourceCheckout(src), true);
  assert.is(isSourceCheckout(packageRoot), true); // these tests run from a clone
});

test.run();
