/** docs/experiments.md's config block is what parseConfig fills in for a config naming only data.cache. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfig } from '../../ts/experiment/config.js';

test('the documented defaults are every section and value parseConfig fills in', () => {
  const md = readFileSync(join(process.cwd(), 'docs', 'experiments.md'), 'utf8');
  const block = /```json\n([\s\S]*?)```/.exec(md.slice(md.indexOf('## Config')))?.[1];
  assert.ok(block, 'docs/experiments.md has no json block under ## Config');
  assert.equal(JSON.parse(block!), parseConfig({ data: { cache: 'data/cache' } }));
});

test.run();
