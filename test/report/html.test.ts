/**
 * report.html: rendered from report.md by a real markdown renderer — links, GFM tables, images — and
 * still one self-contained file (inline CSS, images relative to the run folder, no scripts).
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runExperiment } from '../../ts/distributed/run-experiment.js';
import { parseConfig } from '../../ts/experiment/config.js';
import { reportHtml } from '../../ts/report/html.js';
import { fakeBackend } from '../experiment/fake-backend.js';

const tmp = mkdtempSync(join(tmpdir(), 'cxrmask-report-'));

test('report.html of a fake run: links, tables, images, self-contained', async () => {
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'html',
    data: { cache: 'unused' },
    seeds: [0],
    linearProbe: { epochs: 2, batchSize: 16, lr: 0.05 },
    finetune: { epochs: 1, batchSize: 16, lrHead: 0.02 },
    metrics: { bootstrap: 20 },
  });
  const { runDir } = await runExperiment({ config, backend: fakeBackend() });
  const html = readFileSync(join(runDir, 'report.html'), 'utf8');

  // the links under Table 2 (were literal `[table2.md](table2.md)` text before)
  assert.match(html, /<a href="table2\.md">table2\.md<\/a>/);
  assert.match(html, /<a href="per_disease\.md">per_disease\.md<\/a>/);
  assert.not.match(html, /\[table2\.md\]/);

  // markdown tables become real tables, one per table in report.md
  const mdTables = readFileSync(join(runDir, 'report.md'), 'utf8').match(/^\|[ :-]*-{3}[ :|-]*$/gm) ?? [];
  const htmlTables = html.match(/<table>/g) ?? [];
  assert.ok(mdTables.length >= 1);
  assert.is(htmlTables.length, mdTables.length);
  assert.match(html, /<th[^>]*>/);
  assert.match(html, /<td[^>]*>/);
  assert.not.match(html, /<p>\|/);

  // images: the overlay figure and the plots, each pointing at a file next to report.html
  const srcs = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]!);
  assert.ok(srcs.includes('plots/overlay_example.png'), srcs.join(', '));
  assert.ok(srcs.includes('plots/macroAUROC.png'), srcs.join(', '));
  for (const s of srcs) assert.ok(existsSync(join(runDir, s)), s);

  // self-contained: inline CSS, no scripts, no external stylesheets or remote resources
  assert.match(html, /^<!doctype html>/);
  assert.match(html, /<style>[^<]*table\{border-collapse/);
  assert.not.match(html, /<script|<link|https?:\/\//);
});

test('raw HTML in the markdown is shown as text', () => {
  const html = reportHtml('Run `a<b>` in <b>bold</b> and\n\n<script>alert(1)</script>\n');
  assert.not.match(html, /<script>alert/);
  assert.not.match(html, /<b>bold<\/b>/);
  assert.match(html, /&lt;b&gt;bold&lt;\/b&gt;/);
  assert.match(html, /<code>a&lt;b&gt;<\/code>/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
