import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FINDINGS } from '../../ts/common/labels.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { PRESETS as INDEX_PRESETS, readIndex, writeIndex } from '../../ts/data/mimic.js';
import type { SynthImage } from '../../ts/synth/plan.js';

import { synthTree, tempDir } from './helpers.js';

const frontal = (im: SynthImage) => im.view === 'PA' || im.view === 'AP';

test('default index: counts per split, view, label and drops equal what the generator wrote', async () => {
  const s = await synthTree();
  const { entries, summary } = await buildIndex({ root: s.mimicRoot });
  const want = s.images.filter(frontal);
  assert.is(entries.length, want.length);
  assert.is(summary.metadataRows, s.n);
  assert.equal(new Set(entries.map((e) => e.dicomId)), new Set(want.map((w) => w.dicomId)));
  for (const sp of ['train', 'validate', 'test'] as const)
    assert.is(summary.perSplit[sp], want.filter((w) => w.split === sp).length, sp);
  for (const v of ['PA', 'AP']) assert.is(summary.perView[v], want.filter((w) => w.view === v).length, v);
  const notSel = s.images.filter((im) => !frontal(im));
  const dropped = Object.entries(summary.dropped.counts).reduce(
    (a, [k, n]) => a + (k.startsWith('view-not-selected') ? n : 0),
    0,
  );
  assert.is(dropped, notSel.length);
  // every metadata row's view is counted, blank ones as "(blank)" (MIMIC's summary once left this {})
  const seen: Record<string, number> = {};
  for (const im of s.images) seen[im.view || '(blank)'] = (seen[im.view || '(blank)'] ?? 0) + 1;
  assert.equal(summary.viewsSeen, seen);
  assert.ok(Object.keys(seen).length >= 3, JSON.stringify(seen));
  assert.ok(
    notSel.some((im) => im.view === 'LATERAL'),
    'generator should write laterals',
  );
  FINDINGS.forEach((f, k) => {
    assert.is(summary.perLabel[f].positive, want.filter((w) => w.labels[k] === 1).length, f);
    assert.is(summary.perLabel[f].rawUncertain, want.filter((w) => w.labels[k] === -1).length, f);
    assert.is(summary.perLabel[f].rawBlank, want.filter((w) => w.labels[k] === null).length, f);
    assert.is(summary.perLabel[f].ignored, 0);
  });
  assert.ok(
    FINDINGS.some((_, k) => want.some((w) => w.labels[k] === -1)),
    'generator should write uncertain labels',
  );
  // per-entry labels and paths
  const byId = new Map(want.map((w) => [w.dicomId, w]));
  for (const e of entries) {
    const w = byId.get(e.dicomId) as SynthImage;
    assert.equal(
      e.labels,
      w.labels.map((v) => (v === 1 ? 1 : 0)),
    );
    assert.equal(e.labelMask, [1, 1, 1, 1, 1]);
    assert.is(e.path, w.path);
    assert.is(e.split, w.split);
    assert.is(e.width, w.width);
  }
});

test('uncertain policies ones / ignore and blank ignore', async () => {
  const s = await synthTree();
  const want = new Map(s.images.filter(frontal).map((w) => [w.dicomId, w]));
  const ones = await buildIndex({ root: s.mimicRoot, uncertain: 'ones' });
  const ign = await buildIndex({ root: s.mimicRoot, uncertain: 'ignore', blank: 'ignore' });
  for (const e of ones.entries) {
    const w = want.get(e.dicomId) as SynthImage;
    assert.equal(
      e.labels,
      w.labels.map((v) => (v === 1 || v === -1 ? 1 : 0)),
    );
  }
  for (const e of ign.entries) {
    const w = want.get(e.dicomId) as SynthImage;
    assert.equal(
      e.labelMask,
      w.labels.map((v) => (v === 1 || v === 0 ? 1 : 0)),
    );
  }
  FINDINGS.forEach((f, k) => {
    const n = [...want.values()].filter((w) => w.labels[k] === -1 || w.labels[k] === null).length;
    assert.is(ign.summary.perLabel[f].ignored, n);
  });
});

test('paper preset keeps only images with a positive among the five', async () => {
  const s = await synthTree();
  const { entries, summary } = await buildIndex({ root: s.mimicRoot, ...INDEX_PRESETS.paper });
  const want = s.images.filter((w) => frontal(w) && w.labels.some((v) => v === 1));
  assert.is(entries.length, want.length);
  assert.is(summary.dropped.counts['no-positive-label'], s.images.filter(frontal).length - want.length);
  assert.ok(entries.every((e) => e.labels.some((v) => v === 1)));
  // every drop reason has examples (docs/data.md), naming the metadata file, row and id
  assert.equal(Object.keys(summary.dropped.examples).sort(), Object.keys(summary.dropped.counts).sort());
  assert.match(
    summary.dropped.examples['no-positive-label'][0],
    /mimic-cxr-2\.0\.0-metadata\.csv(\.gz)?, row \d+, id [0-9a-f-]+: none of the five findings is a raw 1 \(requirePositive\)$/,
  );
  const view = Object.keys(summary.dropped.examples).find((k) =>
    k.startsWith('view-not-selected:'),
  ) as string;
  assert.match(
    summary.dropped.examples[view][0],
    new RegExp(
      `, row \\d+, id [0-9a-f-]+: view "${view.slice(18).replace('(blank)', '')}" is not among the selected views \\(PA, AP\\)$`,
    ),
  );
});

test('official and seeded patient-level splits have no patient in two splits', async () => {
  const s = await synthTree();
  for (const opts of [
    {},
    { split: 'patient' as const, splitSeed: 1 },
    {
      split: 'patient' as const,
      splitSeed: 2,
      splitFractions: [0.5, 0.25, 0.25] as [number, number, number],
    },
  ]) {
    const { entries, summary } = await buildIndex({ root: s.mimicRoot, ...opts });
    const splitOf = new Map<string, string>();
    for (const e of entries) {
      const prev = splitOf.get(e.subjectId);
      assert.ok(prev === undefined || prev === e.split, `subject ${e.subjectId} in ${prev} and ${e.split}`);
      splitOf.set(e.subjectId, e.split);
    }
    assert.is(summary.patientsInSeveralSplits, 0);
    assert.ok(
      summary.perSplit.train > 0 && summary.perSplit.validate > 0 && summary.perSplit.test > 0,
      JSON.stringify(summary.perSplit),
    );
  }
  const a = await buildIndex({ root: s.mimicRoot, split: 'patient', splitSeed: 1 });
  const b = await buildIndex({ root: s.mimicRoot, split: 'patient', splitSeed: 1 });
  const c = await buildIndex({ root: s.mimicRoot, split: 'patient', splitSeed: 3 });
  assert.equal(
    a.entries.map((e) => e.split),
    b.entries.map((e) => e.split),
  );
  assert.not.equal(
    a.entries.map((e) => e.split),
    c.entries.map((e) => e.split),
  );
});

test('views are configurable; index file round-trips', async () => {
  const s = await synthTree();
  const { entries, summary } = await buildIndex({ root: s.mimicRoot, views: ['LATERAL', 'LL'] });
  assert.is(entries.length, s.images.filter((im) => im.view === 'LATERAL' || im.view === 'LL').length);
  const dir = tempDir();
  const files = await writeIndex(dir, entries, summary);
  assert.equal(await readIndex(files.index), entries);
  assert.equal(await readIndex(dir), entries);
});

test.run();
