/**
 * SHA-256 of bytes and of files: the cache's shard checksums, a run's model fingerprint, a served
 * cell's check of the model folder it was trained on. Here, on the lowest floor, because every floor
 * above hashes with them.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

const CHUNK = 16 << 20;

/** Hex SHA-256 of `data`. */
export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Hex SHA-256 of a file, read in 16 MB chunks (a shard is never held twice in memory); ~1 GB/s plus
 * the read, so under a second for BiomedCLIP's ~750 MB weights.
 */
export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const got = readSync(fd, buf, 0, CHUNK, null);
      if (got <= 0) break;
      h.update(buf.subarray(0, got));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** sha256File without blocking the event loop (a server or a training loop awaits it). */
export async function sha256FileAsync(path: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead <= 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}
