import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** The environment variable that carries an execution's run token into its container. */
export const RUN_TOKEN_ENV = 'PADDOCK_RUN_TOKEN';

const PREFIX = 'prt_';
/** prt_<execution id>_<32 random bytes, base64url>: the id says which row to check it against. */
const FORMAT = /^prt_([0-9a-z]{1,64})_([A-Za-z0-9_-]{43})$/;

/**
 * A credential for calls back to Paddock from inside one execution: it authenticates as that execution
 * (never as its owner), and only while the execution is not final.
 */
export function newRunToken(executionId: string): string {
  return `${PREFIX}${executionId}_${randomBytes(32).toString('base64url')}`;
}

/** Whether a bearer token is a run token at all (it may still be a wrong one). */
export function isRunToken(token: string): boolean {
  return token.startsWith(PREFIX);
}

/** The execution a run token claims to belong to; undefined when it is not one. */
export function executionOfRunToken(token: string): string | undefined {
  return FORMAT.exec(token)?.[1];
}

/** What is stored of a run token: its SHA-256, hex. */
export function runTokenSha256(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Compares a presented token with a stored hash in constant time. */
export function runTokenMatches(token: string, storedSha256: string): boolean {
  const presented = Buffer.from(runTokenSha256(token), 'hex');
  const stored = Buffer.from(storedSha256, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}
