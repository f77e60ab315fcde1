import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** This package's version from package.json (dist/common/ and ts/common/ both sit two folders below it). */
export function packageVersion(): string {
  try {
    return JSON.parse(readFileSync(resolve(here, '..', '..', 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}
