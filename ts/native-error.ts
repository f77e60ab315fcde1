/**
 * The class a failed native op rejects with; the addon is handed it at load (better-sqlite3 style).
 * A module of its own, importing nothing, so ts/native.ts can use it without pulling in the layers
 * whose errors ts/errors.ts re-exports.
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
