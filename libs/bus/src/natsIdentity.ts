import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createUser, fromSeed } from 'nkeys.js';
import type { NatsUser } from './natsPermissions.js';

/** A NATS user key: the seed signs the server's challenge at connect; nats-server knows the public key. */
export interface NatsKey {
  /** The user seed as text (`SU…`): a secret. */
  readonly seed: string;
  /** The public key (`U…`) that nats-server's config lists with the user's permissions. */
  readonly publicKey: string;
}

/** Who a connection is: the NATS user (a service, or `admin`) and the seed of its key. */
export interface NatsIdentity {
  readonly user: NatsUser;
  readonly seed: string;
}

/** A seed file that is missing, unreadable or does not hold a NATS user seed. */
export class NatsIdentityError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${message}`, options);
    this.name = 'NatsIdentityError';
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The key of a seed (a seed file's text, from `source`); refuses anything but one user seed. */
export function natsKeyOf(text: string, source: string): NatsKey {
  const seed = text.trim();
  let publicKey: string;
  try {
    const pair = fromSeed(new TextEncoder().encode(seed));
    publicKey = pair.getPublicKey();
    pair.clear();
  } catch (err) {
    throw new NatsIdentityError(source, `does not hold a NATS nkey seed (${(err as Error).message})`, { cause: err });
  }
  // An account's or operator's seed parses as well, but nats-server only takes user keys for users.
  if (!seed.startsWith('SU') || !publicKey.startsWith('U')) throw new NatsIdentityError(source, `holds a NATS seed that is not a user's (it starts with ${seed.slice(0, 2)}, not SU)`);
  return { seed, publicKey };
}

/** The key in a seed file written by `ensureNatsIdentity` (or `nk -gen user`). */
export async function readNatsKey(file: string): Promise<NatsKey> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new NatsIdentityError(file, `cannot read the NATS seed: ${(err as Error).message}`, { cause: err });
  }
  return natsKeyOf(text, file);
}

/**
 * The NATS user key kept in `file`, made on the first call: a fresh user seed, readable by its owner only
 * (0600, in a directory made 0700). Safe when several processes call it at once: each writes its own seed
 * aside and links it into place, which fails when the file exists, so exactly one seed wins and every
 * caller returns that one.
 */
export async function ensureNatsIdentity(file: string): Promise<NatsKey> {
  try {
    return await readNatsKey(file);
  } catch (err) {
    if (!(err instanceof NatsIdentityError) || errnoOf(err.cause) !== 'ENOENT') throw err;
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const pair = createUser();
  const seed = new TextDecoder().decode(pair.getSeed());
  pair.clear();
  const aside = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(aside, 'wx', 0o600);
  try {
    await handle.writeFile(`${seed}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(aside, file);
  } catch (err) {
    // Another process made it first: its seed is the one.
    if (errnoOf(err) !== 'EEXIST') throw new NatsIdentityError(file, `cannot store the NATS seed: ${(err as Error).message}`, { cause: err });
  } finally {
    await unlink(aside).catch(() => {});
  }
  return readNatsKey(file);
}
