/**
 * A cell's recorded settings follow its setup, read from its id in one place (cells.ts setupOfCell):
 * a linear-probe cell depends on `linearProbe`, a fine-tuning cell on `finetune`, the zero-shot cell
 * on its prompts; an id no cell has is refused, not taken for a fine-tuning cell.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cellConfig } from '../../ts/experiment/cell-config.js';
import { cellId, setupOfCell } from '../../ts/experiment/cells.js';
import { parseConfig, VARIANTS } from '../../ts/experiment/config.js';

const config = parseConfig({ data: { cache: 'c' } });

test('setupOfCell reads back the setup of every id cellId makes, and zero-shot', () => {
  for (const setup of ['linear-probe', 'finetune'] as const)
    for (const v of VARIANTS)
      for (const seed of [0, 7, 12]) assert.is(setupOfCell(cellId(setup, v, seed)), setup);
  assert.is(setupOfCell('zeroshot'), 'zeroshot');
});

test('setupOfCell refuses an id no cell has, naming it', () => {
  for (const id of ['', 'lp', 'ft-original-s0', 'LP-original-s0'])
    assert.throws(
      () => setupOfCell(id),
      (e: Error) => e.message.includes(`"${id}" is not a cell id`),
    );
});

test('cellConfig: the section of the cell setup, and only it', () => {
  const lp = cellConfig(config, cellId('linear-probe', 'masked', 1));
  const jft = cellConfig(config, cellId('finetune', 'original', 0));
  const zs = cellConfig(config, 'zeroshot');
  assert.ok('linearProbe' in lp && !('finetune' in lp), Object.keys(lp).join());
  assert.ok('finetune' in jft && !('linearProbe' in jft), Object.keys(jft).join());
  assert.is((lp['linearProbe'] as { lr: number }).lr, config.linearProbe.lr);
  assert.is((jft['finetune'] as { lrEncoder: number }).lrEncoder, config.finetune.lrEncoder);
  assert.equal(zs['zeroshot'], {
    prompt: config.zeroshot.prompt,
    negativePrompt: config.zeroshot.negativePrompt,
  });
  assert.not.ok('metrics' in zs);
  assert.throws(() => cellConfig(config, 'probe-original-s0'), /"probe-original-s0" is not a cell id/);
});

test.run();
