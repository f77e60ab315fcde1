/**
 * Large-chunk byte input for the CSV scanner: plain files are read with fs straight into the
 * caller's (reused) buffer; gzip files (sniffed by magic bytes) go through a streaming gunzip.
 */
import { createReadStream, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DataError } from '../common/errors.js';
import { checkRegularFile } from '../common/files.js';
import { isGzip } from './csv.js';

export interface ByteSource {
  /** Copies up to `len` bytes into `buf` at `off`; resolves 0 at the end of the data. */
  read(buf: Buffer, off: number, len: number): Promise<number>;
  /** Bytes taken from the file so far (compressed bytes for gzip, so progress matches the file size). */
  bytesRead(): number;
  readonly totalBytes: number;
  readonly gzip: boolean;
  close(): Promise<void>;
}

export async function openBytes(path: string): Promise<ByteSource> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch {
    throw new DataError('missing-file', 'file does not exist', { file: path });
  }
  checkRegularFile(st, path); // a FIFO would block the open, /dev/zero never end
  const size = st.size;
  return isGzip(path) ? gunzipSource(path, size) : plainSource(path, size);
}

async function plainSource(path: string, size: number): Promise<ByteSource> {
  const fh = await open(path, 'r');
  let position = 0;
  return {
    totalBytes: size,
    gzip: false,
    async read(buf, off, len) {
      const { bytesRead } = await fh.read(buf, off, len, position);
      position += bytesRead;
      return bytesRead;
    },
    bytesRead: () => position,
    close: () => fh.close(),
  };
}

function gunzipSource(path: string, size: number): ByteSource {
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  const gunzip = createGunzip({ chunkSize: 1 << 20 });
  let failure: DataError | null = null;
  const fail = (e: Error | null | undefined) => {
    if (!e || failure) return;
    const msg = /unexpected end of file/i.test(e.message)
      ? 'truncated gzip stream (unexpected end of file)'
      : `corrupt gzip: ${e.message}`;
    failure = new DataError('bad-gzip', msg, { file: path });
  };
  pipeline(file, gunzip, fail);
  const it = gunzip[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let pending: Buffer | null = null;
  let done = false;
  return {
    totalBytes: size,
    gzip: true,
    async read(buf, off, len) {
      while (!pending || pending.length === 0) {
        if (done) {
          if (failure) throw failure;
          return 0;
        }
        try {
          const r = await it.next();
          if (r.done) done = true;
          else pending = r.value;
        } catch (e) {
          fail(e as Error);
          throw failure;
        }
      }
      const n = Math.min(len, pending.length);
      pending.copy(buf, off, 0, n);
      pending = pending.subarray(n);
      return n;
    },
    bytesRead: () => file.bytesRead,
    async close() {
      file.destroy();
      gunzip.destroy();
    },
  };
}
