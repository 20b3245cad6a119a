import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SecretKeyError } from './secretKeyError.js';

export const KEY_BYTES = 32;

/**
 * The key in `file` (base64). With `create`, a missing file is made with mode 0600 by whichever process
 * gets there first: the new key is written aside and linked into place, which fails if another process
 * got there first, so every process ends up with the same key.
 */
export async function readKeyFile(file: string, opts: { create: boolean; missing?: string }): Promise<Buffer> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SecretKeyError(`${file} cannot be read: ${(err as Error).message}`, { cause: err });
    if (!opts.create) throw new SecretKeyError(`${file} does not exist${opts.missing ? `: ${opts.missing}` : ''}`);
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
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
  if (key.length !== KEY_BYTES) throw new SecretKeyError(`${file} must hold ${KEY_BYTES} bytes in base64, found ${key.length}`);
  return key;
}
