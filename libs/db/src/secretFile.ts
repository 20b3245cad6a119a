import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** A password file that exists but holds no usable password. */
export class SecretFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'SecretFileError';
  }
}

/** 32 characters of base64url (192 bits): printable ASCII, nothing a URL or SQL literal needs to escape. */
export function randomPassword(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * The secret in `file` (its first line), created with mode 0600 from `create()` when the file is missing.
 * Several processes may ask at once: the new value is written aside and linked into place, which fails
 * for all but the first, so every caller ends up with the same value and no one reads a half-written file.
 */
export async function readOrCreateSecretFile(file: string, create: () => string = randomPassword): Promise<string> {
  const existing = await readSecretFile(file);
  if (existing !== undefined) return existing;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${create()}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  const created = await readSecretFile(file);
  if (created === undefined) throw new SecretFileError(file, 'disappeared right after it was created');
  return created;
}

/** The secret in `file`, or undefined when there is no such file; an empty file is an error, not a secret. */
export async function readSecretFile(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const secret = text.split('\n')[0]?.trim() ?? '';
  if (secret === '') throw new SecretFileError(file, 'is empty; remove it to have a new password generated, or write one in it');
  return secret;
}
