import type { IncomingMessage } from 'node:http';

/** The ingress's own cookies: set on each host by the ingress, never sent on to the instance, never set by it. */
export const SESSION_COOKIE = 'paddock_session';
export const SHARE_COOKIE = 'paddock_share';
/** A share link is the port's URL with this parameter; the ingress takes it off before anything reaches the instance. */
export const SHARE_PARAM = 'paddock_share';
const OWN_COOKIES: ReadonlySet<string> = new Set([SESSION_COOKIE, SHARE_COOKIE]);

/** Headers of one connection (RFC 9110 §7.6.1), never passed on by a proxy; `upgrade` is put back for an upgrade. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** A Paddock credential in an Authorization header: a user's token or a run token, as a bearer token. */
export function paddockBearer(header: string | undefined): string | undefined {
  const token = header ? /^Bearer\s+(\S+)$/i.exec(header.trim())?.[1] : undefined;
  return token !== undefined && /^(pdk|prt)_/.test(token) ? token : undefined;
}

/** Every value of cookie `name` in the request's Cookie headers (a browser may send several, from several scopes). */
export function cookieValues(req: Pick<IncomingMessage, 'headers'>, name: string): string[] {
  const header = req.headers.cookie;
  if (!header) return [];
  return header
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => pair.slice(0, pair.indexOf('=')) === name)
    .map((pair) => pair.slice(pair.indexOf('=') + 1).replace(/^"(.*)"$/, '$1'));
}

/** A Cookie header without the ingress's own cookies; undefined when nothing is left. */
export function withoutOwnCookies(header: string): string | undefined {
  const kept = header
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => pair !== '' && !OWN_COOKIES.has(pair.slice(0, pair.includes('=') ? pair.indexOf('=') : pair.length)));
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/** A request target split, raw: the instance gets its path and query exactly as they came, but for the share parameter. */
export interface Target {
  readonly path: string;
  /** After the `?`, or '' for none. */
  readonly query: string;
}

/** The path and query of a request target (origin-form, or the path of an absolute-form one). */
export function splitTarget(url: string | undefined): Target {
  let target = url ?? '/';
  if (!target.startsWith('/')) {
    try {
      const parsed = new URL(target);
      target = `${parsed.pathname}${parsed.search}`;
    } catch {
      target = '/';
    }
  }
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

function paramName(pair: string): string {
  const raw = pair.includes('=') ? pair.slice(0, pair.indexOf('=')) : pair;
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/** The values of the share parameter in a query. */
export function shareParams(query: string): string[] {
  if (query === '') return [];
  return query
    .split('&')
    .filter((pair) => paramName(pair) === SHARE_PARAM)
    .map((pair) => {
      const value = pair.includes('=') ? pair.slice(pair.indexOf('=') + 1) : '';
      try {
        return decodeURIComponent(value.replace(/\+/g, ' '));
      } catch {
        return value;
      }
    });
}

/** The target as it goes to the instance: the share parameter taken out, everything else untouched. */
export function upstreamTarget({ path, query }: Target): string {
  if (query === '') return path;
  const kept = query.split('&').filter((pair) => paramName(pair) !== SHARE_PARAM);
  return kept.length > 0 ? `${path}?${kept.join('&')}` : path;
}

/**
 * Where to go after a login: a path of the same host only (`/…`, not `//host` or `/\host`, which browsers
 * take for another host), so that the login is no open redirect. Anything else goes to `/`.
 */
export function safeNext(next: string | undefined): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\') || /[\u0000-\u001f\u007f]/.test(next)) return '/';
  try {
    const url = new URL(next, 'http://ingress.invalid');
    return url.origin === 'http://ingress.invalid' ? `${url.pathname}${url.search}${url.hash}` : '/';
  } catch {
    return '/';
  }
}

export interface ForwardOptions {
  /** The caller's address, appended to X-Forwarded-For. */
  readonly remoteAddress: string | undefined;
  /** The scheme the caller used. */
  readonly proto: 'http' | 'https';
  /** The protocol asked for in an upgrade (`websocket`), kept with `Connection: upgrade`. */
  readonly upgrade?: string;
}

/**
 * The request's headers as the instance gets them (raw pairs, in order, names as sent): no hop-by-hop
 * header, no Paddock credential (a bearer token of Paddock's, the ingress's cookies), no `x-paddock-*`
 * header a caller made up, no `Expect` (the ingress answers 100-continue itself); `Host` as the caller
 * sent it, and X-Forwarded-For (appended), -Proto and -Host (set). An Authorization header that is not a
 * Paddock token is the application's own, and passes.
 */
export function upstreamHeaders(req: Pick<IncomingMessage, 'rawHeaders' | 'headers'>, opts: ForwardOptions): string[] {
  const connectionTokens = new Set(
    String(req.headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== ''),
  );
  const out: string[] = [];
  let forwardedFor: string | undefined;
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || connectionTokens.has(lower) || lower === 'expect' || lower.startsWith('x-paddock-')) continue;
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue;
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    if (lower === 'authorization' && paddockBearer(value) !== undefined) continue;
    if (lower === 'cookie') {
      const kept = withoutOwnCookies(value);
      if (kept !== undefined) out.push(name, kept);
      continue;
    }
    out.push(name, value);
  }
  const remote = opts.remoteAddress?.replace(/^::ffff:/, '');
  if (remote !== undefined) forwardedFor = forwardedFor === undefined ? remote : `${forwardedFor}, ${remote}`;
  if (forwardedFor !== undefined) out.push('X-Forwarded-For', forwardedFor);
  out.push('X-Forwarded-Proto', opts.proto);
  if (req.headers.host !== undefined) out.push('X-Forwarded-Host', req.headers.host);
  if (opts.upgrade !== undefined) out.push('Connection', 'Upgrade', 'Upgrade', opts.upgrade);
  return out;
}

/**
 * The instance's response headers as the caller gets them (raw pairs): no hop-by-hop header (the ingress's
 * own connection carries the body, chunked when it must be), and no Set-Cookie of the ingress's cookies,
 * which the instance may not overwrite. For a 101, `Connection` and `Upgrade` stay: they are the answer.
 */
export function downstreamHeaders(rawHeaders: readonly string[], opts: { upgraded: boolean }): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) && !(opts.upgraded && (lower === 'connection' || lower === 'upgrade'))) continue;
    if (lower === 'set-cookie' && OWN_COOKIES.has(value.slice(0, value.indexOf('=')).trim())) continue;
    out.push(name, value);
  }
  return out;
}
