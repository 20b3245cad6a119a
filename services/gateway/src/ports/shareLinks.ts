import { createHmac, timingSafeEqual } from 'node:crypto';

/** What a share link grants: one port of one instance, until a moment. */
export interface ShareGrant {
  readonly instanceId: string;
  readonly port: number;
  readonly expiresAtMs: number;
}

const VERSION = 'v1';

/**
 * A share link's token: `v1.<expiresAtMs>.<signature>`, the signature an HMAC-SHA256 (base64url) of the
 * instance, the port and the expiry under the gateway's ingress key. It names no user and opens nothing
 * but that port; it needs no table, so it cannot be revoked one by one: it ends at its expiry, with the
 * instance, or for every link at once when the ingress key is replaced.
 */
export function signShareToken(grant: ShareGrant, key: Buffer): string {
  return `${VERSION}.${grant.expiresAtMs}.${signature(grant, key)}`;
}

/** The grant a token carries for this instance and port, or null when it is malformed, forged or expired. */
export function verifyShareToken(token: string, instanceId: string, port: number, key: Buffer, nowMs = Date.now()): ShareGrant | null {
  const [version, expiry, presented, extra] = token.split('.');
  if (version !== VERSION || expiry === undefined || presented === undefined || extra !== undefined) return null;
  if (!/^\d{1,15}$/.test(expiry)) return null;
  const grant: ShareGrant = { instanceId, port, expiresAtMs: Number(expiry) };
  const expected = Buffer.from(signature(grant, key));
  const given = Buffer.from(presented);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
  return grant.expiresAtMs > nowMs ? grant : null;
}

function signature(grant: ShareGrant, key: Buffer): string {
  return createHmac('sha256', key).update(`paddock.share.${VERSION}\n${grant.instanceId}\n${grant.port}\n${grant.expiresAtMs}`).digest('base64url');
}
