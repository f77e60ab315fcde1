// Functions of ts/ longer than a limit (default 80 lines, from the header to the closing brace), and
// whether the comment above each says why it stays long (the words "on purpose": a hot loop, say).
// node scripts/long-functions.mjs [TS_DIR] [LIMIT]   → every long function; exit 1 when one has no reason
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const LINE_LIMIT = 80;
const REASON = /on purpose/i;

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The node whose leading comment documents a function: its statement or property when it is assigned. */
function documented(node) {
  const p = node.parent;
  if (p && ts.isVariableDeclaration(p)) return p.parent?.parent ?? p;
  if (p && (ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p))) return p;
  return node;
}

function nameOf(node, src) {
  if (node.name) return node.name.getText(src);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const p = node.parent;
  if (p && (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)))
    return p.name.getText(src);
  return `<anonymous@${src.getLineAndCharacterOfPosition(node.getStart(src)).line + 1}>`;
}

/** Every function, method, accessor or arrow function over `limit` lines: file, name, lines, reason. */
export function longFunctions(tsDir, limit = LINE_LIMIT) {
  const out = [];
  for (const file of files(tsDir)) {
    const text = readFileSync(file, 'utf8');
    const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && node.body) {
        const first = src.getLineAndCharacterOfPosition(node.getStart(src)).line;
        const last = src.getLineAndCharacterOfPosition(node.end).line;
        const lines = last - first + 1;
        if (lines > limit) {
          const doc = documented(node);
          const comments = (ts.getLeadingCommentRanges(text, doc.getFullStart()) ?? [])
            .map((c) => text.slice(c.pos, c.end))
            .join('\n');
          out.push({
            file: relative(tsDir, file),
            name: nameOf(node, src),
            line: first + 1,
            lines,
            reason: REASON.test(comments),
          });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(src);
  }
  return out.sort((a, b) => b.lines - a.lines);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? 'ts';
  const limit = Number(process.argv[3] ?? LINE_LIMIT);
  const long = longFunctions(dir, limit);
  for (const f of long)
    console.log(`${String(f.lines).padStart(4)}  ${f.file}:${f.line} ${f.name}${f.reason ? '  (long on purpose)' : ''}`);
  const unexplained = long.filter((f) => !f.reason).length;
  console.log(`${long.length} functions over ${limit} lines, ${unexplained} without a reason`);
  process.exitCode = unexplained ? 1 : 0;
}
