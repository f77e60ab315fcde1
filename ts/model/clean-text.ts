/**
 * open_clip's 'whitespace' text clean (open_clip/tokenizer.py `_clean_whitespace`), which runs before
 * the BERT tokenizer: `ftfy.fix_text`, Python's `html.unescape` twice, then whitespace collapsed.
 * Ported step by step (ftfy 6.3, CPython 3.11 html) so that prompts pasted from a paper or a word
 * processor (curly quotes, ligatures, decomposed accents) give open_clip's ids. What is not ported is
 * stated in docs/contracts.md (Token ids): ftfy's mojibake repair (`fix_encoding`), and HTML entity
 * names other than the few below.
 */

/** Bytes 0x80–0x9F as Windows-1252 reads them (undefined ones stay): html's `_invalid_charrefs`, ftfy's sloppy codec. */
const CP1252_C1 =
  '\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f' +
  '\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178';

/** ftfy's LIGATURES: Latin ligatures and legacy digraphs taken apart (æ and the like are kept). */
const LIGATURES: Record<string, string> = {
  Ĳ: 'IJ',
  ĳ: 'ij',
  ŉ: 'ʼn',
  Ǳ: 'DZ',
  ǲ: 'Dz',
  ǳ: 'dz',
  Ǆ: 'DŽ',
  ǅ: 'Dž',
  ǆ: 'dž',
  Ǉ: 'LJ',
  ǈ: 'Lj',
  ǉ: 'lj',
  Ǌ: 'NJ',
  ǋ: 'Nj',
  ǌ: 'nj',
  ﬀ: 'ff',
  ﬁ: 'fi',
  ﬂ: 'fl',
  ﬃ: 'ffi',
  ﬄ: 'ffl',
  ﬅ: 'ſt',
  ﬆ: 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'g');

/**
 * The named character references decoded, as the HTML5 table spells them (case matters: `&AMP;` is
 * one, `&Amp;` is not). ftfy also decodes the upper-case spelling of lower-case-only names.
 */
const NAMED: Record<string, string> = {
  amp: '&',
  AMP: '&',
  lt: '<',
  LT: '<',
  gt: '>',
  GT: '>',
  quot: '"',
  QUOT: '"',
  apos: "'",
  nbsp: '\u00a0',
};
/** The NAMED ones HTML5 also knows without `;` (legacy references). */
const LEGACY = new Set(['amp', 'AMP', 'lt', 'LT', 'gt', 'GT', 'quot', 'QUOT', 'nbsp']);
const FTFY_NAMED: Record<string, string> = { ...NAMED, APOS: "'", NBSP: '\u00a0' };

/** Python's str.split() whitespace (str.isspace): JS `\s` lacks \x1c–\x1f and \x85 and adds \ufeff. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: Python's whitespace includes these controls
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** CPython html.unescape's numeric reference: the HTML5 replacements, '' for the code points it drops. */
function numericRef(n: number): string {
  if (n === 0) return '\ufffd';
  if (n === 0x0d) return '\r';
  if (n >= 0x80 && n <= 0x9f) return CP1252_C1[n - 0x80]!;
  if ((n >= 0xd800 && n <= 0xdfff) || n > 0x10ffff) return '\ufffd';
  const dropped =
    (n >= 0x1 && n <= 0x8) ||
    n === 0xb ||
    (n >= 0xe && n <= 0x1f) ||
    n === 0x7f ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe;
  return dropped ? '' : String.fromCodePoint(n);
}

const parseRef = (body: string): number =>
  body[1] === 'x' || body[1] === 'X'
    ? Number.parseInt(body.slice(2), 16)
    : Number.parseInt(body.slice(1), 10);

/**
 * CPython's html.unescape: numeric references with or without `;`, the names of NAMED. Other names are
 * left as written (CPython knows all of HTML5's, and decodes `&ampx` as `&x`).
 */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g, (m, body: string) => {
    if (body[0] === '#') return numericRef(parseRef(body.replace(/;$/, '')));
    // a name exactly as the table has it; a legacy name without `;` only whole (CPython's prefix match is not ported)
    return body.endsWith(';') ? (NAMED[body.slice(0, -1)] ?? m) : LEGACY.has(body) ? NAMED[body]! : m;
  });
}

/** ftfy's unescape_html: only `&…;` references, a numeric one only when html.unescape consumes the `;`. */
function ftfyUnescape(s: string): string {
  return s.replace(/&#?[0-9A-Za-z]{1,24};/g, (m) => {
    const named = FTFY_NAMED[m.slice(1, -1)];
    if (named !== undefined) return named;
    if (!m.startsWith('&#')) return m;
    const u = htmlUnescape(m);
    return u.includes(';') ? m : u;
  });
}

/** One pass of ftfy's fix_and_explain, in its order (fix_encoding not ported). */
function fixPass(s: string, decodeHtml: boolean): string {
  let t = decodeHtml ? ftfyUnescape(s) : s;
  t = t.replace(/[\x80-\x9f]/g, (c) => CP1252_C1[c.charCodeAt(0) - 0x80]!); // fix_c1_controls
  t = t.replace(LIGATURE_RE, (c) => LIGATURES[c]!);
  // fix_character_width: fullwidth/halfwidth forms to their NFKC forms, the ideographic space to ' '
  t = t.replace(/[\u3000\uff01-\uffef]/g, (c) => (c === '\u3000' ? ' ' : c.normalize('NFKC')));
  t = t.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'"); // uncurl_quotes
  t = t.replace(/\r\n|[\r\u2028\u2029\x85]/g, '\n'); // fix_line_breaks
  // fix_surrogates: a lone surrogate (pairs are already one code point here)
  t = t.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  // remove_terminal_escapes (Python's \d is Unicode), remove_control_chars: ftfy removes control characters
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the escape starts with ESC
  t = t.replace(/\x1b\[((?:\p{Nd}|;)*)([a-zA-Z])/gu, '');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters removed
  t = t.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, '');
  return t.normalize('NFC');
}

/**
 * ftfy.fix_text with its default settings, except fix_encoding: line by line, each line fixed until
 * a pass changes nothing. HTML references are decoded unless a `<` appears (then the text looks like
 * HTML), from that line on, as ftfy does.
 */
export function fixText(text: string): string {
  let decodeHtml = true;
  return text
    .split(/(?<=\n)/)
    .map((line) => {
      if (line.includes('<')) decodeHtml = false;
      let t = line;
      for (let prev = ''; prev !== t; ) {
        prev = t;
        t = fixPass(t, decodeHtml);
      }
      return t;
    })
    .join('');
}

/** open_clip's 'whitespace' clean: ftfy, html-unescape twice, whitespace collapsed and trimmed. */
export function cleanText(text: string): string {
  return htmlUnescape(htmlUnescape(fixText(text)))
    .split(PY_SPACE)
    .filter((w) => w !== '')
    .join(' ');
}
