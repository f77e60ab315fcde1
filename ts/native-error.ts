/**
 * The class a failed native op rejects with; the addon is handed it at load (better-sqlite3 style).
 * A module of its own, importing nothing, so ts/native.ts can use it without pulling in the layers
 * whose errors ts/errors.ts re-exports.
 */

/**
 * ERR_TORCH: LibTorch/TorchScript failed; ERR_INVALID_ARG: the input was refused; ERR_IO: a file could not
 * be written (full disk, quota, permissions; the message names the file and the errno); ERR_NATIVE: other.
 * Distributed (ts/distributed): ERR_DIST_TIMEOUT a peer did not answer within the group's timeout,
 * ERR_DIST_PEER a peer closed its connection (e.g. it died), ERR_DIST_CLOSED the group was closed,
 * ERR_DIST_UNAVAILABLE the backend is not built in, ERR_DIST other c10d failures.
 */
export type NativeErrorCode =
  | 'ERR_TORCH'
  | 'ERR_INVALID_ARG'
  | 'ERR_IO'
  | 'ERR_NATIVE'
  | 'ERR_DIST'
  | 'ERR_DIST_TIMEOUT'
  | 'ERR_DIST_PEER'
  | 'ERR_DIST_CLOSED'
  | 'ERR_DIST_UNAVAILABLE';

export class NativeError extends Error {
  readonly code: NativeErrorCode;
  constructor(message: string, code: NativeErrorCode = 'ERR_NATIVE') {
    super(message);
    this.name = 'NativeError';
    this.code = code;
  }
}
