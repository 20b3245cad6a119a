import type { IncomingHttpHeaders } from 'node:http';
import { EDGE_AUTHZ_HEADERS, EDGE_AUTHZ_PATH_PREFIX, RELAY_HEADERS } from '@paddock/xds';
import { paddockBearer, upstreamTarget, withoutOwnCookies, type Target } from './forwarding.js';

/**
 * Envoy at the edge asks the ingress who may reach each URL (ext_authz, configured by services/xds): the
 * check is the request itself, sent to its own Host, with its path and query after EDGE_AUTHZ_PATH_PREFIX.
 * The ingress decides it as it decides its own requests; this module says how the answer is put.
 */

/**
 * The request target a check is about (`/__paddock/edge-authz/app?x=1` is about `/app?x=1`); undefined
 * for a request that is no check.
 */
export function checkedTarget(url: string | undefined): string | undefined {
  if (url === undefined || !url.startsWith(EDGE_AUTHZ_PATH_PREFIX)) return undefined;
  const rest = url.slice(EDGE_AUTHZ_PATH_PREFIX.length);
  if (rest === '' || rest.startsWith('?')) return `/${rest}`;
  return rest.startsWith('/') ? rest : undefined;
}

/** Whether the request checked asks for an upgrade: Envoy copies its Upgrade header under a name of its own. */
export function checkedUpgrade(headers: IncomingHttpHeaders): boolean {
  const value = headers[EDGE_AUTHZ_HEADERS.upgrade];
  const text = (Array.isArray(value) ? value.join(',') : (value ?? '')).trim();
  // Empty, or the "-" Envoy's formatters write for a header the request does not have: no upgrade.
  return text !== '' && text !== '-';
}

/**
 * The headers of an allowed check (200), which Envoy sets on the request before it goes on: where it goes
 * (instance and port, for the broker's HTTP relay), the target without Paddock's share parameter, and the
 * caller's Cookie without the ingress's own cookies; `x-envoy-auth-headers-to-remove` names what is taken
 * out whole (a Paddock bearer token, a Cookie of the ingress's cookies only). The instance gets what it
 * gets through the ingress itself: never a Paddock credential.
 */
export function allowedHeaders(headers: IncomingHttpHeaders, instanceId: string, port: number, target: Target): Record<string, string> {
  const answer: Record<string, string> = {
    [RELAY_HEADERS.instanceId]: instanceId,
    [RELAY_HEADERS.port]: String(port),
    [RELAY_HEADERS.path]: upstreamTarget(target),
  };
  const remove: string[] = [];
  if (paddockBearer(headers.authorization) !== undefined) remove.push('authorization');
  if (headers.cookie !== undefined) {
    const kept = withoutOwnCookies(headers.cookie);
    if (kept === undefined) remove.push('cookie');
    else answer['cookie'] = kept;
  }
  if (remove.length > 0) answer['x-envoy-auth-headers-to-remove'] = remove.join(', ');
  return answer;
}
