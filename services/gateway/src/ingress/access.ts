import type { ShareGrant } from '../ports/shareLinks.js';
import type { ClosedPortRoute, PortRoute } from './routeTable.js';

/** What a request to the ingress showed, each credential checked already. */
export interface Caller {
  /** The user of a valid bearer token or session cookie; null when it showed neither. */
  readonly userId: string | null;
  /** The grants of the valid, unexpired share links it showed (cookie or `?paddock_share=`). */
  readonly shares: readonly ShareGrant[];
}

export interface RequestKind {
  readonly method: string;
  /** Its Accept header names text/html: a browser navigating. */
  readonly acceptsHtml: boolean;
  /** It asks for a WebSocket (or other) upgrade. */
  readonly upgrade: boolean;
}

/** The Accept header names text/html (what browsers send when they navigate; curl's `*\/*` does not). */
export function acceptsHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    return type === 'text/html' && !params.some((p) => /^q=0(\.0*)?$/.test(p));
  });
}

/**
 * Whether the caller may reach `route` (port `port` of its instance): anyone for a public port; the owner
 * of the instance; for a `project` port, whoever is a member (any role) of the instance's project
 * (`inProject`, looked up only then); whoever shows a share link of that very port. A closed port (a
 * running instance where nothing listens) is shown to the same people as it would be open and private.
 */
export function mayReach(route: PortRoute | ClosedPortRoute, port: number, caller: Caller, ownerId: string | null, inProject = false): boolean {
  if (route.kind === 'port' && route.visibility === 'public') return true;
  if (caller.userId !== null && ownerId !== null && caller.userId === ownerId) return true;
  if (route.kind === 'port' && route.visibility === 'project' && caller.userId !== null && inProject) return true;
  return caller.shares.some((grant) => grant.instanceId === route.instanceId && grant.port === port);
}

/** Whether deciding needs the caller's place in the instance's project: a user who is not its owner, on a `project` port. */
export function needsProject(route: PortRoute | ClosedPortRoute, caller: Caller, ownerId: string | null): boolean {
  return route.kind === 'port' && route.visibility === 'project' && caller.userId !== null && caller.userId !== ownerId;
}

/** Whether deciding needs the instance's owner: only for a caller who is a user, on a port that is not public. */
export function needsOwner(route: PortRoute | ClosedPortRoute, caller: Caller): boolean {
  return caller.userId !== null && !(route.kind === 'port' && route.visibility === 'public');
}

/**
 * What a caller who may not reach a host is told. A browser that showed no credential at all is sent to log
 * in (the same for every host of the base domain, so the redirect tells nothing of what exists); anyone
 * else gets 404, as for a host that does not exist.
 */
export function refusal(caller: Caller, request: RequestKind): 'login' | 'not-found' {
  const anonymous = caller.userId === null && caller.shares.length === 0;
  const navigation = (request.method === 'GET' || request.method === 'HEAD') && request.acceptsHtml && !request.upgrade;
  return anonymous && navigation ? 'login' : 'not-found';
}
