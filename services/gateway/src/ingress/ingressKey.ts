import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export const INGRESS_KEY_BYTES = 32;

/** The ingress key file cannot be read, or does not hold a key. */
export class IngressKeyError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${message}`, options);
    this.name = 'IngressKeyError';
  }
}

/**
 * The key in `file` (32 random bytes, base64), which signs the ingress's login tickets, its session cookies
 * and share links. A missing file is made with mode 0600 by whichever process gets there first: the new key
 * is written aside and linked into place, which fails if another process got there first, so every
 * gateway sharing the file ends up with the same key and none reads a half-written one.
 */
export async function loadIngressKey(file: string): Promise<Buffer> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new IngressKeyError(file, `cannot be read: ${(err as Error).message}`, { cause: err });
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, `${randomBytes(INGRESS_KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    try {
      await link(tmp, file);
    } catch (linkErr) {
      if ((linkErr as NodeJS.ErrnoException).code !== 'EEXIST') throw linkErr;
    } finally {
      await rm(tmp, { force: true });
    }
    text = await readFile(file, 'utf8');
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== INGRESS_KEY_BYTES) {
    throw new IngressKeyError(file, `must hold ${INGRESS_KEY_BYTES} bytes in base64, found ${key.length}; remove it to have a new key made (every session and share link ends)`);
  }
  return key;
}
