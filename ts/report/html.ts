/**
 * report.md → report.html: one file with its CSS inline; images stay relative links to plots/ next to it,
 * as in report.md. Markdown (GFM tables, links, lists) is rendered by `marked`.
 */
import { Marked } from 'marked';

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Links and images only to relative paths or http(s): a `javascript:`, `data:` or `vbscript:` target
 * (from a value markdown-escaping missed) renders as its text. The browser reads the attribute after
 * decoding character references (`javascript&#58;…`) and skipping whitespace and control characters,
 * so a relative path may have neither `:` nor `&` before its first `/`, `?` or `#`.
 */
export function safeHref(href: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is dropped
  const h = href.replace(/[\u0000-\u0020\u007f]/g, '');
  if (/^https?:/i.test(h)) return true;
  return !/[:&]/.test(h.split(/[/?#]/, 1)[0]!);
}

// Raw HTML in the markdown (a run name, a config value) is shown as text, never interpreted; a link or
// image to anything but a relative path or http(s) likewise (false: marked's own rendering).
const marked = new Marked({
  gfm: true,
  renderer: {
    html: ({ text }) => escapeHtml(text),
    link(token) {
      return safeHref(token.href) ? false : this.parser.parseInline(token.tokens);
    },
    image: ({ href, text }) => (safeHref(href) ? false : escapeHtml(text)),
  },
});

const CSS =
  'body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}' +
  'table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}' +
  'td:first-child,th:first-child{text-align:left}img{max-width:100%}code{background:#f3f3f3}';

export function reportHtml(md: string): string {
  const body = marked.parse(md, { async: false });
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>cxrmask report</title><style>${CSS}</style>` +
    `</head><body>\n${body}\n</body></html>\n`
  );
}
