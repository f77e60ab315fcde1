// Lists the node_modules folders the GPU check needs at run time, one per line: package.json's
// dependencies (less cmake-js: there cmake runs directly), tsx (the benches) and the build headers,
// with all they require, each dependency resolved as Node resolves it (the requirer's own
// node_modules first, then its parents'). A folder inside another listed folder is left out: tar packs
// it with its parent. Run from the repository root.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

const root = process.cwd();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const wanted = [
  ...Object.keys(pkg.dependencies ?? {}).filter((n) => n !== 'cmake-js'),
  'tsx',
  'node-addon-api',
  'node-api-headers',
];

function resolveFrom(dir, name) {
  for (let d = dir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (d === root || dirname(d) === d) return null;
  }
}

const seen = new Set();
const todo = wanted.map((name) => ({ name, from: root, optional: false }));
while (todo.length > 0) {
  const { name, from, optional } = todo.pop();
  const dir = resolveFrom(from, name);
  if (dir === null) {
    if (optional) continue; // another platform's binary, say
    throw new Error(`${name} (needed by ${relative(root, from) || 'package.json'}) is not installed`);
  }
  if (seen.has(dir)) continue;
  seen.add(dir);
  const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  for (const n of Object.keys(p.dependencies ?? {})) todo.push({ name: n, from: dir, optional: false });
  for (const n of Object.keys(p.optionalDependencies ?? {})) todo.push({ name: n, from: dir, optional: true });
}
const dirs = [...seen].map((d) => relative(root, d)).sort();
const outermost = dirs.filter((d) => !dirs.some((o) => d !== o && d.startsWith(o + sep)));
console.log(outermost.join('\n'));
