import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/** PostgreSQL's own default (scram_iterations). */
const ITERATIONS = 4096;
const SALT_BYTES = 16;

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, in PostgreSQL's text form
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`). Paddock sends this to ALTER/CREATE ROLE
 * instead of the password itself, as psql's \password does, so the password never appears in a
 * statement that the server might log or show in pg_stat_activity.
 *
 * PostgreSQL normalizes passwords with SASLprep first; for printable ASCII, the only passwords Paddock
 * accepts for roles, that is the identity.
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(SALT_BYTES), iterations = ITERATIONS): string {
  const { storedKey, serverKey } = keys(password, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Whether `verifier` (as stored in pg_authid.rolpassword) is one made from `password`; false for any other kind of verifier. */
export function scramMatches(verifier: string, password: string): boolean {
  const match = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(verifier);
  if (match === null) return false;
  const [, iterations, salt, stored, server] = match as unknown as [string, string, string, string, string];
  const expected = keys(password, Buffer.from(salt, 'base64'), Number(iterations));
  const storedKey = Buffer.from(stored, 'base64');
  const serverKey = Buffer.from(server, 'base64');
  return (
    storedKey.length === expected.storedKey.length &&
    serverKey.length === expected.serverKey.length &&
    timingSafeEqual(storedKey, expected.storedKey) &&
    timingSafeEqual(serverKey, expected.serverKey)
  );
}

function keys(password: string, salt: Buffer, iterations: number): { storedKey: Buffer; serverKey: Buffer } {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}
