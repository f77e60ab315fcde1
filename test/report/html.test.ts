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
import type { Results } from '../../ts/experiment/results.js';
import { reportHtml } from '../../ts/report/html.js';
import { reportMarkdown } from '../../ts/report/markdown.js';
import { mdCode, mdText } from '../../ts/report/md-text.js';
import { segmenterQualityMarkdown } from '../../ts/report/segmenter.js';
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

/** Every href and src of the page, as the browser reads it (character references decoded, controls dropped). */
function targets(html: string): string[] {
  return [...html.matchAll(/(?:href|src)="([^"]*)"/gi)].map((m) =>
    m[1]!
      .replace(/&#x([0-9a-f]+);?/gi, (_, h) => String.fromCodePoint(Number.parseInt(h, 16)))
      .replace(/&#(\d+);?/g, (_, d) => String.fromCodePoint(Number(d)))
      .replace(/&colon;/gi, ':')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: browsers skip them in a URL's scheme
      .replace(/[\u0000-\u0020]/g, ''),
  );
}
const scripted = (t: string) => /^(?:javascript|data|vbscript):/i.test(t);

test('links and images to javascript:, data: and vbscript: render as text, however written', () => {
  const payloads = [
    '[a](javascript:alert(1))',
    '[a](JaVaScRiPt:alert(1))',
    '<javascript:alert(2)>',
    '[c](javascript&#58;alert(1))',
    '[d](&#106;avascript:alert(1))',
    '[e](&#x6a;avascript&colon;alert(1))',
    '[f](data:text/html;base64,PHNjcmlwdD4=)',
    '[g](vbscript:msgbox(1))',
    '![h](javascript:alert(1))',
    '[i](<javascript:alert(1)>)',
    'x [j]\n\n[j]: javascript:alert(9)',
  ];
  for (const p of payloads) {
    const html = reportHtml(`Run ${p} here\n`);
    assert.not.ok(targets(html).some(scripted), `${p} → ${html.split('<body>')[1]}`);
  }
  // relative paths and http(s) stay links
  const ok = reportHtml('[t](table2.md) [w](https://example.org/a) ![p](plots/a.png) [f](#x)\n');
  assert.equal(targets(ok), ['table2.md', 'https://example.org/a', 'plots/a.png', '#x']);
});

test('values from model.json and results.json are shown as text in report.md and report.html', async () => {
  const config = parseConfig({
    runsDir: join(tmp, 'runs'),
    name: 'inject',
    data: { cache: 'unused' },
    seeds: [0],
    linearProbe: { epochs: 1, batchSize: 16 },
    finetune: { enabled: false },
    metrics: { bootstrap: 10 },
  });
  const { results } = await runExperiment({ config, backend: fakeBackend() });
  const link = '` [full results](javascript:alert(document.domain)) `';
  const r: Results = {
    ...results,
    run: {
      ...results.run,
      dir: `/runs/x${link}`,
      device: 'cpu [d](javascript:alert(3))',
      model: { preset: `tiny${link}`, source: '<javascript:alert(2)> *bold*', dir: 'm' },
    },
  };
  const md = reportMarkdown(r, { plots: [], overlay: null });
  const html = reportHtml(md);
  assert.not.ok(targets(html).some(scripted), html);
  assert.not.match(html, /<strong>bold|<em>/);
  assert.match(html, /<code>tiny` \[full results\]\(javascript:alert\(document\.domain\)\) `<\/code>/);
  assert.match(html, /\(&lt;javascript:alert\(2\)&gt; \*bold\*\)/);
  assert.match(html, /device cpu \[d\]\(javascript:alert\(3\)\)/);
  // a code span cannot be closed or broken out of (blank lines end paragraphs)
  assert.is(
    reportHtml(`a ${mdCode('x``y\n\n[z](javascript:1)')} b`).match(/<code>(.*)<\/code>/)![1],
    'x``y [z](javascript:1)',
  );
  assert.is(
    reportHtml(mdText('_a_ [b](c) <d> & e|f')).match(/<p>(.*)<\/p>/)![1],
    '_a_ [b](c) &lt;d&gt; &amp; e|f',
  );
  const seg = segmenterQualityMarkdown({
    dir: 'seg` [x](javascript:alert(4)) `',
    weights: 'w.pt',
    weightsSha256: 'abc',
    images: 1,
    gridSize: 4,
    dice: { rightLung: { mean: 1 }, leftLung: { mean: 1 }, heart: { mean: 1 } },
    hd95: { rightLung: { median: 0 }, leftLung: { median: 0 }, heart: { median: 0 } },
    training: null,
  } as unknown as Parameters<typeof segmenterQualityMarkdown>[0]);
  assert.not.ok(targets(reportHtml(seg)).some(scripted), seg);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
