import { ROUTE_METADATA_KEY } from '@paddock/xds';

/**
 * Who may open a port's URL: its owner (`private`); the members of its project (`project`); anyone
 * (`public`).
 */
export type PortVisibility = 'private' | 'project' | 'public';
const VISIBILITIES: readonly string[] = ['private', 'project', 'public'];

/** A host that leads to an open port: relayed to `port` inside `instanceId`, through the broker behind `cluster`. */
export interface PortRoute {
  readonly kind: 'port';
  readonly instanceId: string;
  readonly port: number;
  readonly visibility: PortVisibility;
  readonly brokerId: string;
  readonly cluster: string;
}

/** A host of a running instance on which nothing listens: answered 502 (to those who may see the instance). */
export interface ClosedPortRoute {
  readonly kind: 'closed';
  readonly instanceId: string;
}

/** Any other answer the control plane gives itself (the catch-all 404). */
export interface DirectRoute {
  readonly kind: 'direct';
  readonly status: number;
  readonly body: string;
}

export type IngressRoute = PortRoute | ClosedPortRoute | DirectRoute;

/** A route configuration the ingress cannot use; the message is what it tells the control plane (its NACK). */
export class RouteTableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RouteTableError';
  }
}

type Plain = Record<string, unknown>;

function isPlain(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A google.protobuf.Struct as decoded (`fields` of Values) as plain values: strings and numbers, what route metadata holds. */
export function structValues(struct: unknown): Map<string, string | number> {
  const values = new Map<string, string | number>();
  const fields = isPlain(struct) && isPlain(struct['fields']) ? struct['fields'] : {};
  for (const [key, value] of Object.entries(fields)) {
    if (!isPlain(value)) continue;
    const text = value['stringValue'] ?? value['string_value'];
    const number = value['numberValue'] ?? value['number_value'];
    if (typeof text === 'string' && (value['kind'] === undefined || /^string_?[vV]alue$/.test(String(value['kind'])))) values.set(key, text);
    else if (typeof number === 'number') values.set(key, number);
  }
  return values;
}

/** The `io.paddock` metadata of a route or endpoint, or an empty map. */
export function paddockMetadata(holder: Plain): Map<string, string | number> {
  const metadata = holder['metadata'];
  if (!isPlain(metadata) || !isPlain(metadata['filter_metadata'])) return new Map();
  return structValues(metadata['filter_metadata'][ROUTE_METADATA_KEY]);
}

interface Matcher {
  /** Envoy's route matches the ingress follows: a path prefix or a whole path. */
  readonly prefix?: string;
  readonly path?: string;
  readonly route: IngressRoute;
}

interface VirtualHost {
  readonly name: string;
  readonly routes: readonly Matcher[];
}

function portRoute(where: string, route: Plain, action: Plain): PortRoute {
  if (action['cluster_specifier'] !== undefined && action['cluster_specifier'] !== 'cluster') {
    throw new RouteTableError(`${where}: routes by ${String(action['cluster_specifier'])}; the ingress follows a route to one named cluster only`);
  }
  const cluster = action['cluster'];
  if (typeof cluster !== 'string' || cluster === '') throw new RouteTableError(`${where}: the route names no cluster`);
  const meta = paddockMetadata(route);
  const instanceId = meta.get('instance_id');
  const port = meta.get('port');
  const brokerId = meta.get('broker_id');
  const visibility = meta.get('visibility');
  if (typeof instanceId !== 'string' || instanceId === '') throw new RouteTableError(`${where}: its ${ROUTE_METADATA_KEY} metadata has no instance_id`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new RouteTableError(`${where}: its ${ROUTE_METADATA_KEY} metadata has no port in 1-65535 (got ${JSON.stringify(port ?? null)})`);
  }
  if (typeof brokerId !== 'string' || brokerId === '') throw new RouteTableError(`${where}: its ${ROUTE_METADATA_KEY} metadata has no broker_id`);
  if (typeof visibility !== 'string' || !VISIBILITIES.includes(visibility)) {
    throw new RouteTableError(`${where}: visibility ${JSON.stringify(visibility ?? null)} is none the ingress knows (${VISIBILITIES.join(', ')}): it cannot tell who may reach it`);
  }
  return { kind: 'port', instanceId, port, visibility: visibility as PortVisibility, brokerId, cluster };
}

/**
 * A route to a cluster: an open port when its metadata names one; the other ports of a running instance
 * (whose route leads to its broker, which says that nothing listens) when it names the instance alone.
 */
function clusterRoute(where: string, route: Plain, action: Plain): PortRoute | ClosedPortRoute {
  const meta = paddockMetadata(route);
  const instanceId = meta.get('instance_id');
  if (!meta.has('port') && typeof instanceId === 'string' && instanceId !== '') return { kind: 'closed', instanceId };
  return portRoute(where, route, action);
}

function directRoute(where: string, action: Plain): DirectRoute {
  const status = action['status'];
  if (typeof status !== 'number' || status < 200 || status > 599) throw new RouteTableError(`${where}: a direct response with status ${JSON.stringify(status ?? null)}`);
  const body = isPlain(action['body']) && typeof action['body']['inline_string'] === 'string' ? action['body']['inline_string'] : '';
  return { kind: 'direct', status, body };
}

function matcherOf(where: string, route: Plain): Matcher {
  const match = isPlain(route['match']) ? route['match'] : {};
  const specifier = match['path_specifier'] ?? (typeof match['prefix'] === 'string' ? 'prefix' : typeof match['path'] === 'string' ? 'path' : undefined);
  if (specifier !== 'prefix' && specifier !== 'path') throw new RouteTableError(`${where}: matches by ${String(specifier ?? 'nothing')}; the ingress follows prefix and path matches only`);
  if (list(match['headers']).length > 0 || list(match['query_parameters']).length > 0) throw new RouteTableError(`${where}: matches on headers or query parameters, which the ingress does not follow`);
  const value = match[specifier];
  if (typeof value !== 'string') throw new RouteTableError(`${where}: its ${specifier} is not a string`);
  let target: IngressRoute;
  if (isPlain(route['route'])) target = clusterRoute(where, route, route['route']);
  else if (isPlain(route['direct_response'])) target = directRoute(where, route['direct_response']);
  else throw new RouteTableError(`${where}: neither a route to a cluster nor a direct response (the ingress does not follow redirects or other actions)`);
  return specifier === 'prefix' ? { prefix: value, route: target } : { path: value, route: target };
}

/**
 * The edge route configuration of services/xds as the ingress uses it: which instance port a host leads
 * to, and what to answer for the others. Hosts are matched as Envoy matches virtual hosts' domains: an exact
 * domain first, then the longest `*`-suffix, then the longest `*`-prefix, then `*`.
 */
export class RouteTable {
  readonly #exact = new Map<string, VirtualHost>();
  /** [suffix without its '*', host], longest first. */
  readonly #suffixes: [string, VirtualHost][] = [];
  /** [prefix without its '*', host], longest first. */
  readonly #prefixes: [string, VirtualHost][] = [];
  #any: VirtualHost | undefined;
  readonly #ports: PortRoute[] = [];

  private constructor() {}

  /** Builds the table from a decoded RouteConfiguration; RouteTableError says what it cannot use. */
  static build(config: Plain): RouteTable {
    const table = new RouteTable();
    const seen = new Set<string>();
    for (const [i, vh] of list(config['virtual_hosts']).entries()) {
      if (!isPlain(vh)) throw new RouteTableError(`virtual host ${i} is not a message`);
      const name = typeof vh['name'] === 'string' && vh['name'] !== '' ? vh['name'] : `#${i}`;
      const domains = list(vh['domains']).map((d) => (typeof d === 'string' ? d.toLowerCase() : ''));
      if (domains.length === 0) throw new RouteTableError(`virtual host ${name} has no domains`);
      const routes = list(vh['routes']).map((r, j) => {
        if (!isPlain(r)) throw new RouteTableError(`virtual host ${name}, route ${j}: not a message`);
        return matcherOf(`virtual host ${name}, route ${typeof r['name'] === 'string' && r['name'] !== '' ? r['name'] : j}`, r);
      });
      const host: VirtualHost = { name, routes };
      for (const domain of domains) {
        // Envoy refuses a configuration that repeats a domain: which host would win is not defined.
        if (seen.has(domain)) throw new RouteTableError(`domain "${domain}" is in two virtual hosts (the second is ${name})`);
        seen.add(domain);
        table.#addDomain(domain, host, name);
      }
      for (const { route } of routes) if (route.kind === 'port') table.#ports.push(route);
    }
    table.#suffixes.sort((a, b) => b[0].length - a[0].length);
    table.#prefixes.sort((a, b) => b[0].length - a[0].length);
    return table;
  }

  #addDomain(domain: string, host: VirtualHost, name: string): void {
    const stars = domain.split('*').length - 1;
    if (domain === '*') this.#any = host;
    else if (stars === 0 && domain !== '') this.#exact.set(domain, host);
    else if (stars === 1 && domain.startsWith('*') && domain.length > 1) this.#suffixes.push([domain.slice(1), host]);
    else if (stars === 1 && domain.endsWith('*') && domain.length > 1) this.#prefixes.push([domain.slice(0, -1), host]);
    else throw new RouteTableError(`virtual host ${name}: "${domain}" is not a domain (a wildcard may only begin or end one)`);
  }

  /** What `hostname` (lowercase, no port) and `path` (no query) lead to; null when no route matches. */
  match(hostname: string, path: string): IngressRoute | null {
    const host = this.#virtualHost(hostname);
    if (!host) return null;
    for (const m of host.routes) {
      if (m.prefix !== undefined ? path.startsWith(m.prefix) : path === m.path) return m.route;
    }
    return null;
  }

  #virtualHost(hostname: string): VirtualHost | undefined {
    const exact = this.#exact.get(hostname);
    if (exact) return exact;
    // A wildcard stands for at least one character, as in Envoy.
    for (const [suffix, host] of this.#suffixes) if (hostname.length > suffix.length && hostname.endsWith(suffix)) return host;
    for (const [prefix, host] of this.#prefixes) if (hostname.length > prefix.length && hostname.startsWith(prefix)) return host;
    return this.#any;
  }

  /** Every open port the table routes to. */
  get ports(): readonly PortRoute[] {
    return this.#ports;
  }

  /** The clusters its routes lead to. */
  clusters(): Set<string> {
    return new Set(this.#ports.map((p) => p.cluster));
  }
}
