/**
 * BERT WordPiece (uncased) tokenizer for the text tower: tokenizer.json (Hugging Face format, written
 * by tools/export_biomedclip.py from vocab.txt) loaded with @huggingface/tokenizers. Output matches
 * open_clip's HFTokenizer (within what clean-text.ts ports): its 'whitespace' clean, `[CLS] … [SEP]
 * [PAD]*`, truncated/padded to contextLength.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError } from '../common/errors.js';
import { readJsonFile } from '../common/io.js';
import { cleanText } from './clean-text.js';
import { readModelMeta } from './meta.js';

/** The export's text tokenizer: the same ids as open_clip's HFTokenizer. */
export interface TextTokenizer {
  /** Token ids, row-major [texts.length, contextLength]. */
  encode(texts: string[]): BigInt64Array;
  readonly contextLength: number;
  readonly padId: number;
}

/**
 * Loads `tokenizer.json` of an export folder: BERT WordPiece, uncased, `[CLS] … [SEP]` padded with
 * `[PAD]` to the context length.
 * @throws {ConfigError} tokenizer.json is missing, or it, tokenizer_config.json or model.json cannot
 *   be read, is not a JSON object or not a tokenizer (the message names the file).
 * @throws {DataError} `not-a-file`: one of them is a FIFO, device or folder.
 */
export function loadTokenizer(dir: string, options: { contextLength?: number } = {}): TextTokenizer {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path))
    throw new ConfigError(`${dir} has no tokenizer.json (export the model with tools/export_biomedclip.py)`);
  const json = readJsonFile(path, 'tokenizer.json');
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? readJsonFile(cfgPath, 'tokenizer_config.json') : {};
  const contextLength = options.contextLength ?? readModelMeta(dir).contextLength;
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, config);
  } catch (e) {
    // the library's own message ("Tokenizer must contain a \"model\" property") names no file
    throw new ConfigError(`${path}: not a tokenizer the library can load (${(e as Error).message})`);
  }
  const id = (t: string): number => {
    const v = tok.token_to_id(t);
    if (v === undefined) throw new ConfigError(`${path}: vocabulary has no ${t}`);
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
