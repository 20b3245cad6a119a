import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/**
 * Lowercase, time-ordered ids (10 characters of milliseconds, 12 random): they sort by creation, and are
 * valid in NATS subjects and in host names ({id}-{port}.{BASE_DOMAIN}).
 */
export function newId(nowMs = Date.now()): string {
  let time = '';
  let t = nowMs;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const rand = randomBytes(12);
  let tail = '';
  for (const b of rand) tail += ALPHABET[b % 32];
  return time + tail;
}

export function newToken(): string {
  return `pdk_${randomBytes(32).toString('base64url')}`;
}
