/** A host name of the ingress: port `port` of instance `instanceId`. */
export interface IngressHost {
  /** The host name as routes know it: lowercase, with no port and no trailing dot. */
  readonly hostname: string;
  readonly instanceId: string;
  readonly port: number;
}

/** An instance id as it appears in a host name: execution ids are lowercase letters and digits (ids.ts); hyphens are kept for ids made elsewhere. */
const ID = '[a-z0-9]+(?:-[a-z0-9]+)*';
/** 1-65535 with no leading zero: one spelling per port, as the routes have it. */
const PORT = '[1-9][0-9]{0,4}';
const PADDOCK_FORM = new RegExp(`^(${ID})-(${PORT})$`);
const E2B_FORM = new RegExp(`^(${PORT})-(${ID})$`);

/**
 * The host name of a Host header (or of `host[:port]` as a browser's URL has it): lowercase, without the
 * port and a trailing dot; null for anything that is not a DNS name (an IP literal, an empty header).
 */
export function hostnameOf(host: string | undefined): string | null {
  if (host === undefined) return null;
  const m = /^([A-Za-z0-9.-]+?)\.?(?::(\d{1,5}))?$/.exec(host.trim());
  if (!m || m[1] === undefined || m[1] === '') return null;
  return m[1].toLowerCase();
}

/**
 * `{id}-{port}.{baseDomain}` or E2B's `{port}-{id}.{baseDomain}` (any case, with or without `:port` and a
 * trailing dot) as the instance and port it names; null for any other host, a port outside 1-65535
 * included. Paddock's own form is tried first, as services/xds gives it the host when both could match.
 */
export function parseIngressHost(host: string | undefined, baseDomain: string): IngressHost | null {
  const hostname = hostnameOf(host);
  const suffix = `.${baseDomain}`;
  if (hostname === null || !hostname.endsWith(suffix)) return null;
  const label = hostname.slice(0, -suffix.length);
  if (label.length > 63) return null;
  const paddock = PADDOCK_FORM.exec(label);
  if (paddock) return portOf(hostname, paddock[1]!, paddock[2]!);
  const e2b = E2B_FORM.exec(label);
  if (e2b) return portOf(hostname, e2b[2]!, e2b[1]!);
  return null;
}

function portOf(hostname: string, instanceId: string, port: string): IngressHost | null {
  const n = Number(port);
  return n >= 1 && n <= 65_535 ? { hostname, instanceId, port: n } : null;
}

/**
 * The origin at which browsers reach `hostname` through the ingress: the scheme and port of
 * PADDOCK_PUBLIC_INGRESS_URL when there is one (a proxy in front), else plain HTTP on the ingress's port;
 * null when the gateway runs no ingress and names none.
 */
export function ingressOrigin(hostname: string, ingress: { readonly port: number; readonly publicIngressUrl: string | undefined }): string | null {
  if (ingress.publicIngressUrl !== undefined) {
    const url = new URL(ingress.publicIngressUrl);
    return `${url.protocol}//${hostname}${url.port === '' ? '' : `:${url.port}`}`;
  }
  if (ingress.port === 0) return null;
  return `http://${hostname}${ingress.port === 80 ? '' : `:${ingress.port}`}`;
}
