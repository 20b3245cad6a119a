import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobRef } from '@paddock/proto';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A blob that is missing, or whose content no longer matches its address. */
export class BlobError extends Error {
  constructor(
    message: string,
    readonly sha256: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BlobError';
  }
}

/**
 * Content-addressed storage on a folder shared by the gateway (which writes a request's large inputs once)
 * and the broker (which reads them into the workspace): `<dir>/<sha256[0:2]>/<sha256>`. Writes are atomic
 * (a temporary file renamed into place), so a reader never sees half a blob; the same content is stored once.
 */
export class BlobStore {
  constructor(readonly dir: string) {}

  private pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new BlobError(`"${sha256}" is not a SHA-256 address`, sha256);
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  async put(data: Uint8Array): Promise<BlobRef> {
    const sha256 = createHash('sha256').update(data).digest('hex');
    const path = this.pathOf(sha256);
    try {
      // Stored already: refresh its time, so the retention sweep counts from its latest use.
      const now = new Date();
      await utimes(path, now, now);
      return { sha256, sizeBytes: data.byteLength };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await mkdir(join(this.dir, sha256.slice(0, 2)), { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, data, { mode: 0o600 });
    await rename(tmp, path);
    return { sha256, sizeBytes: data.byteLength };
  }

  /** The blob's content, checked against its address and size. */
  async get(ref: BlobRef): Promise<Buffer> {
    let data: Buffer;
    try {
      data = await readFile(this.pathOf(ref.sha256));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BlobError(`input ${ref.sha256.slice(0, 12)} is not in the blob store ${this.dir} (is it shared with the gateway?)`, ref.sha256, { cause: err });
      }
      throw err;
    }
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== ref.sha256 || data.byteLength !== ref.sizeBytes) {
      throw new BlobError(`input ${ref.sha256.slice(0, 12)} in the blob store is damaged (its content no longer matches its address)`, ref.sha256);
    }
    return data;
  }

  /** Removes blobs not written or used for `olderThanMs`; returns how many. */
  async sweep(olderThanMs: number, nowMs = Date.now()): Promise<number> {
    let removed = 0;
    let shards: string[];
    try {
      shards = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    for (const shard of shards) {
      const shardDir = join(this.dir, shard);
      for (const name of await readdir(shardDir).catch(() => [] as string[])) {
        const path = join(shardDir, name);
        const s = await stat(path).catch(() => null);
        if (s && nowMs - s.mtimeMs > olderThanMs) {
          await rm(path, { force: true });
          removed++;
        }
      }
    }
    return removed;
  }
}
