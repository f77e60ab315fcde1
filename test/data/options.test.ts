/**
 * The data layer's public entry points refuse unknown or out-of-range options with a TypeError /
 * RangeError naming the option (not a raw ZodError, and never silently ignored).
 */

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { joinChexmask } from '../../ts/data/chexmask.js';
import { buildIndex } from '../../ts/data/datasets/mimic.js';
import { openCache } from '../../ts/images/cache.js';
import { buildCache } from '../../ts/images/cache-build.js';
import { preprocess, resolvePreprocess } from '../../ts/images/preprocess.js';
import { identityGeometry } from '../../ts/masks/geometry.js';
import { contourMap, paintTable } from '../../ts/masks/overlay.js';
import { rejects, tempDir } from './helpers.js';

const sync = (f: () => unknown) => rejects(Promise.resolve().then(f), /./);

function isA(err: Error, kind: typeof TypeError | typeof RangeError, re: RegExp) {
  assert.instance(err, kind, err.message);
  assert.is.not(err.name, 'ZodError');
  assert.match(err.message, re);
}

test('misspelled options are a TypeError naming them', async () => {
  const out = tempDir();
  isA(
    await rejects(
      buildCache({ entries: [], root: out, chexmask: null, out, shardSze: 4 } as never),
      /shardSze/,
    ),
    TypeError,
    /unknown buildCache option 'shardSze'/,
  );
  isA(
    await rejects(preprocess(Buffer.alloc(8), null, { preprocess: { sise: 224 } as never }), /sise/),
    TypeError,
    /unknown preprocess option 'sise'/,
  );
  isA(
    await rejects(preprocess(Buffer.alloc(8), null, { overlay: { thicknes: 3 } as never }), /thicknes/),
    TypeError,
    /unknown overlay option 'thicknes'/,
  );
  isA(await rejects(buildIndex({ root: out, veiws: ['PA'] } as never), /veiws/), TypeError, /buildIndex/);
  isA(
    await rejects(joinChexmask('no-such.csv', [], { minDise: 0.5 } as never), /minDise/),
    TypeError,
    /joinChexmask/,
  );
  isA(await sync(() => openCache(out, { overlay: { thicknes: 1 } as never })), TypeError, /'thicknes'/);
  isA(
    await sync(() => openCache(out, { overlai: {} } as never)),
    TypeError,
    /unknown openCache option 'overlai'/,
  );
  isA(await sync(() => resolvePreprocess({ mean: [0, 0, 0], nope: 1 } as never)), TypeError, /'nope'/);
  isA(
    await sync(() =>
      paintTable({
        colors: { rightLung: [1, 0, 0], leftLung: [1, 0, 0], heart: [0, 0, 1], lungs: [1, 1, 1] },
      } as never),
    ),
    TypeError,
    /'colors.lungs'/,
  );
  isA(
    await sync(() =>
      contourMap({ width: 4, height: 4 } as never, identityGeometry(4, 4), { alpha: 1 } as never),
    ),
    TypeError,
    /unknown contour option 'alpha'/,
  );
});

test('out-of-range and mistyped values are a RangeError / TypeError naming the option', async () => {
  const out = tempDir();
  isA(
    await rejects(buildCache({ entries: [], root: out, chexmask: null, out, shardSize: 0 }), /shardSize/),
    RangeError,
    /buildCache option 'shardSize'/,
  );
  isA(await sync(() => resolvePreprocess({ size: 8 })), RangeError, /preprocess option 'size'/);
  isA(await sync(() => resolvePreprocess({ kernel: 'box' as never })), RangeError, /'kernel'/);
  isA(await sync(() => resolvePreprocess({ size: '224' as never })), TypeError, /'size'/);
  // a std of 0 made every predict fail on NaN/Inf without naming std; a negative one flipped the image
  for (const std of [
    [0, 0, 0],
    [-1, -1, -1],
    [1e-300, 0.2, 0.2],
  ] as [number, number, number][])
    isA(await sync(() => resolvePreprocess({ std })), RangeError, /preprocess option 'std\.0': Too small/);
  assert.equal(resolvePreprocess({ std: [0.2, 0.2, 0.2] }).std, [0.2, 0.2, 0.2]);
  isA(
    await rejects(preprocess(Buffer.alloc(8), null, { overlay: { alpha: 20 } }), /alpha/),
    RangeError,
    /overlay option 'alpha'/,
  );
});

test.run();
