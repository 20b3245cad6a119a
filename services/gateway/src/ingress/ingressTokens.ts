import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { verifyShareToken, type ShareGrant } from '../ports/shareLinks.js';

/** How long a login ticket may be used (once) after the login page got it. */
export const LOGIN_TICKET_TTL_MS = 60_000;

/** Longer values than any this class makes are refused before they are parsed. */
const MAX_TOKEN_CHARS = 1024;

interface Signed {
  /** Who: a user id. */
  readonly u: string;
  /** The host name it is bound to. */
  readonly h: string;
  /** Expiry, epoch ms. */
  readonly e: number;
  /** A login ticket's nonce: what makes it one-time. */
  readonly n?: string;
}

/**
 * What the ingress signs with its key: the one-time login tickets the API hands the login page, and the
 * session cookies they are exchanged for. Both are bound to one host name and expire; both are
 * `<payload>.<HMAC-SHA256>` (base64url), the HMAC over a purpose label and the payload, so a ticket is never
 * taken for a session or the other way round, nor either for a share link (src/ports/shareLinks.ts, same
 * key, its own label). Nothing is stored but the tickets already used, in this process: tickets live a
 * minute, so several gateways that share the key would each accept a ticket once.
 */
export class IngressTokens {
  readonly #key: Buffer;
  /** Nonce -> expiry of the tickets redeemed and not yet expired. */
  readonly #redeemed = new Map<string, number>();

  constructor(
    key: Buffer,
    private readonly sessionTtlMs: number,
  ) {
    this.#key = key;
  }

  /** A ticket for `userId` to log in to `hostname` once, within LOGIN_TICKET_TTL_MS. */
  issueTicket(userId: string, hostname: string, nowMs = Date.now()): { ticket: string; expiresAtMs: number } {
    const expiresAtMs = nowMs + LOGIN_TICKET_TTL_MS;
    return { ticket: this.#sign('ticket', { u: userId, h: hostname, e: expiresAtMs, n: randomBytes(16).toString('base64url') }), expiresAtMs };
  }

  /** The user a ticket was issued to, if it is genuine, for `hostname`, unexpired and not used before; it is used now. */
  redeemTicket(ticket: string, hostname: string, nowMs = Date.now()): string | null {
    const payload = this.#open('ticket', ticket, hostname, nowMs);
    if (!payload?.n) return null;
    for (const [nonce, expiresAtMs] of this.#redeemed) if (expiresAtMs <= nowMs) this.#redeemed.delete(nonce);
    if (this.#redeemed.has(payload.n)) return null;
    this.#redeemed.set(payload.n, payload.e);
    return payload.u;
  }

  /** A session cookie's value for `userId` on `hostname`, and how long it lasts. */
  issueSession(userId: string, hostname: string, nowMs = Date.now()): { value: string; maxAgeS: number } {
    return { value: this.#sign('session', { u: userId, h: hostname, e: nowMs + this.sessionTtlMs }), maxAgeS: Math.floor(this.sessionTtlMs / 1000) };
  }

  /** The user of a session cookie, if it is genuine, for `hostname` and unexpired. */
  session(value: string, hostname: string, nowMs = Date.now()): string | null {
    return this.#open('session', value, hostname, nowMs)?.u ?? null;
  }

  /** What a share link's token grants on this instance's port, or null (src/ports/shareLinks.ts). */
  share(token: string, instanceId: string, port: number, nowMs = Date.now()): ShareGrant | null {
    if (token.length > MAX_TOKEN_CHARS) return null;
    return verifyShareToken(token, instanceId, port, this.#key, nowMs);
  }

  #sign(purpose: 'ticket' | 'session', payload: Signed): string {
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${body}.${this.#mac(purpose, body)}`;
  }

  #open(purpose: 'ticket' | 'session', token: string, hostname: string, nowMs: number): Signed | null {
    if (token.length > MAX_TOKEN_CHARS) return null;
    const [body, mac, extra] = token.split('.');
    if (body === undefined || mac === undefined || extra !== undefined) return null;
    const expected = Buffer.from(this.#mac(purpose, body));
    const given = Buffer.from(mac);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
    let payload: Signed;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Signed;
    } catch {
      return null;
    }
    if (typeof payload.u !== 'string' || typeof payload.h !== 'string' || typeof payload.e !== 'number') return null;
    return payload.h === hostname && payload.e > nowMs ? payload : null;
  }

  #mac(purpose: string, body: string): string {
    return createHmac('sha256', this.#key).update(`paddock.ingress.${purpose}.v1\n${body}`).digest('base64url');
  }
}
