/** Array equality for large typed arrays: names the first differing index (uvu's diff of 50k elements is very slow). */
import * as assert from 'uvu/assert';

export function assertSameArray(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) assert.unreachable(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
  }
}
