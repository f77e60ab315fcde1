// The floors of ts/ and the imports that run back up them (docs/architecture.md).
// node scripts/floors.mjs [TS_DIR]                 → every upward import; exit 1 when there is one
// node scripts/floors.mjs [TS_DIR] --re-exports  → modules other than ts/index.ts that re-export; exit 1 when one does
// node scripts/floors.mjs [TS_DIR] --option NAME --from ts/cli/run-command.ts
//   → the files one option passes through on its way from that CLI module to ts/native.ts
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Lowest first. A module may import its own floor and the floors below it, never one above. */
export const FLOORS = [
  ['common'],
  ['native'],
  ['data'],
  ['masks'],
  ['model'],
  ['images'],
  ['synth'],
  ['segment'],
  ['explain'],
  ['service'],
  ['experiment'],
  ['report'],
  ['distributed'],
  ['cli'],
  ['index'],
];

/** The floor a module lives on: its folder under ts/, or `native`/`index` for those two root files. */
export function floorOf(tsDir, file) {
  const rel = relative(tsDir, file);
  if (rel.includes('/')) return rel.split('/')[0];
  const base = rel.replace(/\.ts$/, '');
  return base === 'native' || base === 'index' ? base : 'common';
}

const levelOf = (floor) => FLOORS.findIndex((f) => f.includes(floor));

export function modules(tsDir) {
  const out = [];
  const walk = (d) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
    }
  };
  walk(tsDir);
  return out;
}

/** Static imports and re-exports (type-only ones too: they tie the floors as much). */
export function importsOf(file) {
  const src = readFileSync(file, 'utf8');
  const specs = [...src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+['"](\.[^'"]+)['"]/gms)].map((m) => m[1]);
  for (const m of src.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) specs.push(m[1]);
  return specs.map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
}

/** Every import from a lower floor to a higher one, or to a folder the floors do not list. */
export function upwardImports(tsDir) {
  const dir = resolve(tsDir);
  const found = [];
  for (const f of modules(dir)) {
    const from = floorOf(dir, f);
    for (const t of importsOf(f)) {
      const to = floorOf(dir, t);
      if (from === to) continue;
      const a = levelOf(from);
      const b = levelOf(to);
      if (a < 0 || b < 0 || b > a || (a === b && from !== to)) {
        found.push({ from: relative(dir, f), to: relative(dir, t), floors: `${from} → ${to}` });
      }
    }
  }
  return found;
}

/** The local names a module's imports bind: `a` of `import a from`, `c` of `{ b as c }`, `ns` of `* as ns`. */
function importedNames(src) {
  const names = new Set();
  for (const m of src.matchAll(/^\s*import\s+(?:type\s+)?([^;'"]*?)\s*from\s*['"][^'"]+['"]/gm)) {
    const clause = m[1];
    const ns = /\*\s*as\s+([\w$]+)/.exec(clause);
    if (ns) names.add(ns[1]);
    const def = /^([\w$]+)\s*(?:,|$)/.exec(clause.trim());
    if (def) names.add(def[1]);
    const braces = /\{([^}]*)\}/.exec(clause);
    for (const item of braces ? braces[1].split(',') : []) {
      const local = item.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()?.trim();
      if (local) names.add(local);
    }
  }
  return names;
}

/**
 * Modules other than the package root (ts/index.ts) that re-export: `export … from`, `export * from`,
 * and `export { x }` / `export type { x }` of a name they import. The root is the only barrel; every
 * other module is imported from where its names are defined.
 */
export function reExports(tsDir) {
  const dir = resolve(tsDir);
  const found = [];
  for (const f of modules(dir)) {
    const rel = relative(dir, f);
    if (rel === 'index.ts') continue;
    const src = readFileSync(f, 'utf8');
    const lineOf = (i) => src.slice(0, i).split('\n').length;
    const from = /^[ \t]*export\s+(?:type\s+)?(?:\*(?:\s*as\s+[\w$]+)?|\{[^}]*\})\s*from\s*['"]([^'"]+)['"]/gm;
    for (const m of src.matchAll(from)) found.push({ file: rel, line: lineOf(m.index), what: `from ${m[1]}` });
    const imported = importedNames(src);
    for (const m of src.matchAll(/^[ \t]*export\s+(?:type\s+)?\{([^}]*)\}(?!\s*from\b)/gm)) {
      const names = m[1]
        .split(',')
        .map((x) => x.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0].trim())
        .filter((x) => imported.has(x));
      if (names.length) found.push({ file: rel, line: lineOf(m.index), what: `imported ${names.join(', ')}` });
    }
  }
  return found;
}

/**
 * The files an option passes through from `entry` to ts/native.ts: modules reachable from the entry that
 * name the option and from which native.ts is reachable, with the upward steps among them.
 */
export function optionPath(tsDir, entry, option) {
  const dir = resolve(tsDir);
  const all = modules(dir);
  const edges = new Map(all.map((f) => [f, importsOf(f).filter((t) => all.includes(t))]));
  const reach = (start) => {
    const seen = new Set([start]);
    const todo = [start];
    while (todo.length) for (const t of edges.get(todo.pop()) ?? []) if (!seen.has(t) && seen.add(t)) todo.push(t);
    return seen;
  };
  const nativeFile = join(dir, 'native.ts');
  const word = new RegExp(`\\b${option}\\b`);
  const files = [...reach(resolve(entry))].filter(
    (f) => word.test(readFileSync(f, 'utf8')) && reach(f).has(nativeFile),
  );
  const set = new Set(files);
  let upward = 0;
  for (const f of files)
    for (const t of edges.get(f))
      if (set.has(t) && levelOf(floorOf(dir, t)) > levelOf(floorOf(dir, f))) upward++;
  return { files: files.map((f) => relative(dir, f)).sort(), upward };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const tsDir = args[0] && !args[0].startsWith('--') ? args[0] : 'ts';
  const opt = args.indexOf('--option');
  if (args.includes('--re-exports')) {
    const re = reExports(tsDir);
    for (const r of re) console.log(`${r.file}:${r.line}: re-exports ${r.what}`);
    console.log(`${re.length} re-exports below the package root`);
    process.exit(re.length ? 1 : 0);
  } else if (opt >= 0) {
    const from = args[args.indexOf('--from') + 1] ?? 'ts/cli/run-command.ts';
    const r = optionPath(tsDir, from, args[opt + 1]);
    for (const f of r.files) console.log(f);
    console.log(`${r.files.length} files carry --${args[opt + 1]} from ${from} to native.ts; ${r.upward} imports among them run up the floors`);
  } else {
    const up = upwardImports(tsDir);
    for (const u of up) console.log(`${u.floors}: ${u.from} → ${u.to}`);
    console.log(`${up.length} imports run up the floors`);
    process.exit(up.length ? 1 : 0);
  }
}
