/**
 * Every error class the library throws on purpose, in one place. NativeError is what a failed native
 * op rejects with (the addon is handed this class at load, better-sqlite3 style); the others are
 * defined next to the code that throws them and only re-exported here.
 */

/** ERR_TORCH: LibTorch/TorchScript failed; ERR_INVALID_ARG: the input was refused; ERR_NATIVE: other. */
export type NativeErrorCode = 'ERR_TORCH' | 'ERR_INVALID_ARG' | 'ERR_NATIVE';

export class NativeError extends Error {
  readonly code: NativeErrorCode;
  constructor(message: string, code: NativeErrorCode = 'ERR_NATIVE') {
    super(message);
    this.name = 'NativeError';
    this.code = code;
  }
}

export { DataError, type DataErrorWhere } from './data/errors.js';
export { ConfigError } from './experiment/config.js';
export { InterruptedError } from './experiment/train.js';
