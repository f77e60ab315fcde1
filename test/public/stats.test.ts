/**
 * `stats` of the package root: the summary statistics the metrics and the bootstrap use, on numbers
 * small enough to check by hand. Imports only the root.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stats } from '../../ts/index.js';

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('nanMean: the mean of the finite values; NaN when there is none', () => {
  close(stats.nanMean([1, Number.NaN, 2, Number.POSITIVE_INFINITY, 6]), 3, 'mean of 1, 2, 6');
  close(stats.nanMean(new Float32Array([0.5, 1.5])), 1, 'typed array');
  assert.ok(Number.isNaN(stats.nanMean([Number.NaN])));
  assert.ok(Number.isNaN(stats.nanMean([])));
});

test('quantile: linear interpolation between the order statistics', () => {
  const xs = [1, 2, 4, 8, 16];
  close(stats.quantile(xs, 0), 1, 'q0');
  close(stats.quantile(xs, 0.5), 4, 'median');
  close(stats.quantile(xs, 1), 16, 'q1');
  // position (5 − 1) · 0.3 = 1.2: 2 + 0.2 · (4 − 2)
  close(stats.quantile(xs, 0.3), 2.4, 'q0.3');
  // position 3 · 0.975 = 2.925 over [10, 20, 30, 40]: 30 + 0.925 · 10
  close(stats.quantile([10, 20, 30, 40], 0.975), 39.25, 'q0.975');
  assert.ok(Number.isNaN(stats.quantile([], 0.5)));
});

test('meanSd: the mean and the sample standard deviation (n − 1) of the finite values', () => {
  const r = stats.meanSd([2, 4, 4, 4, 5, 5, 7, 9, Number.NaN]);
  assert.is(r.n, 8);
  close(r.mean, 5, 'mean');
  // squared deviations sum to 32; 32 / 7
  close(r.sd, Math.sqrt(32 / 7), 'sd');
  assert.equal(stats.meanSd([3]), { mean: 3, sd: 0, n: 1 });
  const none = stats.meanSd([Number.NaN]);
  assert.is(none.n, 0);
  assert.ok(Number.isNaN(none.mean) && Number.isNaN(none.sd));
});

test.run();
