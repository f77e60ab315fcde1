/**
 * BERT WordPiece (uncased) tokenizer for the text tower: tokenizer.json (Hugging Face format, written
 * by tools/export_biomedclip.py from vocab.txt) loaded with @huggingface/tokenizers. Output matches
 * open_clip's HFTokenizer: whitespace clean, `[CLS] … [SEP] [PAD]*`, truncated/padded to contextLength.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { readModelMeta } from './meta.js';

/** The export's text tokenizer: the same ids as open_clip's HFTokenizer. */
export interface TextTokenizer {
  /** Token ids, row-major [texts.length, contextLength]. */
  encode(texts: string[]): BigInt64Array;
  readonly contextLength: number;
  readonly padId: number;
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

function unescapeHtml(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, body: string) => {
    if (body[0] === '#') {
      const code =
        body[1] === 'x' || body[1] === 'X'
          ? Number.parseInt(body.slice(2), 16)
          : Number.parseInt(body.slice(1), 10);
      return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    }
    return NAMED[body.toLowerCase()] ?? m;
  });
}

/** open_clip's 'whitespace' clean: html-unescape twice, collapse whitespace, trim (ftfy not applied). */
export function cleanText(text: string): string {
  return unescapeHtml(unescapeHtml(text)).trim().split(/\s+/).join(' ').trim();
}

/**
 * Loads `tokenizer.json` of an export folder: BERT WordPiece, uncased, `[CLS] … [SEP]` padded with
 * `[PAD]` to the context length.
 */
export function loadTokenizer(dir: string, options: { contextLength?: number } = {}): TextTokenizer {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path))
    throw new Error(`${dir} has no tokenizer.json (export the model with tools/export_biomedclip.py)`);
  const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgPath)
    ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>)
    : {};
  const contextLength = options.contextLength ?? readModelMeta(dir).contextLength;
  const tok = new Tokenizer(json, config);
  const id = (t: string): number => {
    const v = tok.token_to_id(t);
    if (v === undefined) throw new Error(`${path}: vocabulary has no ${t}`);
    return v;
  };
  const padId = id('[PAD]');
  const sepId = id('[SEP]');
  return {
    contextLength,
    padId,
    encode(texts: string[]): BigInt64Array {
      if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string'))
        throw new TypeError('texts must be an array of strings');
      const out = new BigInt64Array(texts.length * contextLength).fill(BigInt(padId));
      texts.forEach((text, row) => {
        let ids = tok.encode(cleanText(text)).ids;
        if (ids.length > contextLength) ids = [...ids.slice(0, contextLength - 1), sepId];
        for (let j = 0; j < ids.length; j++) out[row * contextLength + j] = BigInt(ids[j]!);
      });
      return out;
    },
  };
}
