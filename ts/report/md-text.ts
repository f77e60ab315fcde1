/**
 * Values from outside the report's own text (paths, model.json's preset and source, results.json read
 * back by `eval`) put into the markdown as text: markdown in them is shown, never interpreted, so a
 * model folder cannot plant a link or an image in a report.
 */

/** Line breaks would end the paragraph (or the table row) the value is in. */
const oneLine = (v: unknown) => String(v).replace(/[\r\n]+/g, ' ');

/**
 * The value as plain markdown text, mid-line: every character that can start inline markup (emphasis,
 * code, links, images, autolinks, raw HTML, entities, strikethrough, table cells) is backslash-escaped.
 */
export function mdText(v: unknown): string {
  return oneLine(v).replace(/[\\`*_[\]()<>!|~&]/g, '\\$&');
}

/** The value as a code span: fenced by more backticks than its longest backtick run, so it cannot close it. */
export function mdCode(v: unknown): string {
  const s = oneLine(v);
  const longest = Math.max(0, ...(s.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  // a span starting or ending with a backtick needs a space there (stripped again by the renderer)
  const pad = s.startsWith('`') || s.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${s}${pad}${fence}`;
}
