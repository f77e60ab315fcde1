/** gitInfo: cxrmask's own commit only when its package root is the top of a git checkout. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gitInfo } from '../../ts/experiment/results-assembly.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-git-info-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const env = {
  ...process.env,
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    .toString()
    .trim();

// a consumer's project under git, with a committed file edited since, and an installed cxrmask inside it
const app = join(tmp, 'app');
const installed = join(app, 'node_modules', 'cxrmask');
mkdirSync(join(installed, 'dist'), { recursive: true });
writeFileSync(join(installed, 'package.json'), '{"name":"cxrmask"}\n');
writeFileSync(join(app, 'index.js'), 'one\n');
git(app, 'init', '-q');
git(app, 'add', 'index.js');
git(app, 'commit', '-qm', 'app');
writeFileSync(join(app, 'index.js'), 'two\n');
const appHead = git(app, 'rev-parse', 'HEAD');

test("an installed copy inside the consumer's repository records no commit (not the consumer's)", () => {
  assert.equal(gitInfo(installed), { commit: null, dirty: null });
});

test('the top of a checkout records its commit and dirty flag, also through a symlinked path', () => {
  assert.equal(gitInfo(app), { commit: appHead, dirty: true });
  const link = join(tmp, 'link');
  symlinkSync(app, link);
  assert.equal(gitInfo(link), { commit: appHead, dirty: true });
});

test('a folder outside any repository records nulls', () => {
  const lone = join(tmp, 'lone');
  mkdirSync(lone);
  assert.equal(gitInfo(lone), { commit: null, dirty: null });
});

test.run();
