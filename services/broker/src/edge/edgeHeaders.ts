import type { IncomingMessage } from 'node:http';

/** Headers of one connection (RFC 9110 §7.6.1), never passed on by a proxy; `upgrade` is put back for an upgrade. */
const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Headers Paddock's edge sets for the relay (where a request goes), never an instance's business. */
const PADDOCK_PREFIX = 'x-paddock-';

/**
 * The request's headers as the instance gets them (raw pairs, names as sent): none of one connection, none
 * of Paddock's, no `Expect` (the relay answers 100-continue itself); for an upgrade, `Connection: Upgrade`
 * and the protocol asked for. Host and everything else stay as Envoy sent them.
 */
export function instanceHeaders(req: Pick<IncomingMessage, 'rawHeaders' | 'headers'>, upgrade?: string): string[] {
  const connectionTokens = new Set(
    String(req.headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== ''),
  );
  const out: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || connectionTokens.has(lower) || lower === 'expect' || lower.startsWith(PADDOCK_PREFIX)) continue;
    out.push(name, req.rawHeaders[i + 1]!);
  }
  if (upgrade !== undefined) out.push('Connection', 'Upgrade', 'Upgrade', upgrade);
  return out;
}

/** The instance's response headers as Envoy gets them: none of one connection, but `Connection` and `Upgrade` of a 101. */
export function responseHeaders(rawHeaders: readonly string[], opts: { upgraded: boolean }): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) && !(opts.upgraded && (lower === 'connection' || lower === 'upgrade'))) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  return out;
}

/** Where a request goes, as the edge's headers say. */
export interface EdgeTarget {
  readonly instanceId: string;
  readonly port: number;
  /** The path and query the instance gets. */
  readonly path: string;
}

/** The header names the edge sets: those of services/xds's RELAY_HEADERS that the relay reads. */
export const EDGE_HEADERS = {
  instanceId: 'x-paddock-instance-id',
  port: 'x-paddock-port',
  path: 'x-paddock-path',
} as const;

function single(req: Pick<IncomingMessage, 'headers'>, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Where a request goes: the instance and port its route (or the gateway's authorization) named, and the
 * target the authorization left (Paddock's share parameter taken out), else the request's own. A string
 * says why a request does not say where it goes.
 */
export function targetOf(req: Pick<IncomingMessage, 'headers' | 'url'>): EdgeTarget | string {
  const instanceId = single(req, EDGE_HEADERS.instanceId) ?? '';
  const portText = single(req, EDGE_HEADERS.port) ?? '';
  if (!/^[A-Za-z0-9_-]+$/.test(instanceId) || !/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > 65_535) {
    return `this is a broker's relay for Paddock's edge proxy: each request names an instance and a TCP port in ${EDGE_HEADERS.instanceId} and ${EDGE_HEADERS.port}, which the edge routes set (got "${instanceId}" and "${portText}")`;
  }
  const path = single(req, EDGE_HEADERS.path) ?? req.url ?? '/';
  // What Node's HTTP client takes as a request target (it throws on anything else): no space, no control.
  if (!/^\/[\u0021-\u00ff]*$/.test(path)) return `${EDGE_HEADERS.path} must be a path (with its query) without spaces or control characters, got ${JSON.stringify(path)}`;
  return { instanceId, port: Number(portText), path };
}
