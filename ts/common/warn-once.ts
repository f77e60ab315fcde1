/** Process warnings given once per folder (a run, a cache): a CLI may open the same one several times. */

import { resolve } from 'node:path';

const given = new Set<string>();

/**
 * process.emitWarning(message, { code }) unless `code` was already given for `folder` in this process
 * (the folder resolved, so a relative and an absolute name of it count as one).
 */
export function warnOnce(folder: string, code: string, message: string): void {
  const key = `${code}\0${resolve(folder)}`;
  if (given.has(key)) return;
  given.add(key);
  process.emitWarning(message, { code });
}
