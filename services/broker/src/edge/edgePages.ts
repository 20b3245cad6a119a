import type { ServerResponse } from 'node:http';

/**
 * The answers the relay gives itself, word for word those of the gateway's ingress (its ingressPages), so
 * that a caller who comes through Envoy is told what a caller of the ingress is told: HTML to a browser,
 * one line of text to anything else.
 */
export interface Page {
  readonly status: number;
  readonly title: string;
  readonly text: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** Sends `page` as HTML to a browser (its Accept names text/html), as plain text to anything else. */
export function sendPage(res: ServerResponse, page: Page, html: boolean): void {
  const body = html
    ? `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
      `<title>${escapeHtml(page.title)}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}p{color:#444}</style></head>` +
      `<body><h1>${escapeHtml(page.title)}</h1><p>${escapeHtml(page.text)}</p><p><small>Paddock</small></p></body></html>\n`
    : `${page.title}: ${page.text}\n`;
  res.writeHead(page.status, {
    ...PAGE_HEADERS,
    'content-type': html ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** The raw HTTP/1.1 answer to a refused upgrade: the socket is not an HTTP response object. */
export function rawAnswer(page: Page): string {
  const body = `${page.text}\n`;
  return `HTTP/1.1 ${page.status} ${page.title}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`;
}

/** The Accept header names text/html (what browsers send when they navigate). */
export function acceptsHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    return type === 'text/html' && !params.some((p) => /^q=0(\.0*)?$/.test(p));
  });
}

/** An instance this broker does not run (ended, unknown, another broker's): what the ingress says of any host it cannot serve. */
export const NOT_FOUND: Page = { status: 404, title: 'Not found', text: 'No Paddock instance port answers at this address.' };

export function nothingListens(instanceId: string, port: number): Page {
  return {
    status: 502,
    title: `Nothing listens on port ${port}`,
    text: `Instance ${instanceId} is running, but nothing listens on port ${port} inside it. Start a server on that port (bound to 0.0.0.0 or 127.0.0.1), then reload this page.`,
  };
}

export const BAD_GATEWAY: Page = { status: 502, title: 'Bad gateway', text: 'The server inside the instance closed the connection without an answer.' };

export const UNAVAILABLE: Page = { status: 503, title: 'Unavailable', text: 'The broker cannot check this instance right now; try again in a moment.' };

export function badRequest(text: string): Page {
  return { status: 400, title: 'Bad request', text };
}
