import type { ServerResponse } from 'node:http';

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A page the ingress answers itself: no cache, no framing, no script, nothing loaded from anywhere. */
const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export interface Page {
  readonly status: number;
  readonly title: string;
  /** Plain sentences; the HTML form escapes them. */
  readonly text: string;
  /** A link under the text (HTML form only). */
  readonly link?: { readonly href: string; readonly label: string };
}

/** Sends `page` as HTML to a browser (its Accept names text/html), as plain text to anything else. */
export function sendPage(res: ServerResponse, page: Page, html: boolean, extraHeaders: Record<string, string | string[]> = {}): void {
  const body = html
    ? `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
      `<title>${escapeHtml(page.title)}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}p{color:#444}</style></head>` +
      `<body><h1>${escapeHtml(page.title)}</h1><p>${escapeHtml(page.text)}</p>` +
      (page.link ? `<p><a href="${escapeHtml(page.link.href)}">${escapeHtml(page.link.label)}</a></p>` : '') +
      `<p><small>Paddock</small></p></body></html>\n`
    : `${page.title}: ${page.text}\n`;
  res.writeHead(page.status, {
    ...PAGE_HEADERS,
    ...extraHeaders,
    'content-type': html ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** The same for every host that is unknown, ended, or that the caller may not reach: it tells nothing of which. */
export const NOT_FOUND: Page = { status: 404, title: 'Not found', text: 'No Paddock instance port answers at this address.' };

export function nothingListens(instanceId: string, port: number): Page {
  return {
    status: 502,
    title: `Nothing listens on port ${port}`,
    text: `Instance ${instanceId} is running, but nothing listens on port ${port} inside it. Start a server on that port (bound to 0.0.0.0 or 127.0.0.1), then reload this page.`,
  };
}

export function brokerUnavailable(instanceId: string): Page {
  return { status: 503, title: 'Instance unreachable', text: `The broker that runs instance ${instanceId} does not answer right now; try again in a moment.` };
}

export const STARTING: Page = { status: 503, title: 'Starting', text: 'The ingress has not received its routes from the control plane yet; try again in a moment.' };

export const DATABASE_UNAVAILABLE: Page = { status: 503, title: 'Unavailable', text: "Paddock's database does not answer right now, so the caller cannot be checked; try again in a moment." };

export const INTERNAL_ERROR: Page = { status: 500, title: 'Internal error', text: 'The ingress failed to handle this request.' };

export const BAD_GATEWAY: Page = { status: 502, title: 'Bad gateway', text: 'The server inside the instance closed the connection without an answer.' };

/** The raw HTTP/1.1 answer for a refused upgrade: the socket is not an HTTP response object yet. */
export function rawAnswer(status: number, reason: string, text: string): string {
  const body = `${text}\n`;
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`;
}
