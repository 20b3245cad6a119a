// The gateway's embedded ingress as `paddock up` runs it: portdetect sees a server start inside an
// instance, services/xds routes `{id}-{port}.localhost`, and the ingress relays HTTP and WebSockets to it
// through the broker, for the owner (token or browser login), for a share link until it expires, and for
// no one else. Servers inside: Python's http.server on 127.0.0.1 in an instance with no network, on
// 0.0.0.0 in a bridged one, and a WebSocket echo server written with Python's standard library.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request, type IncomingHttpHeaders } from 'node:http';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

const run = promisify(execFile);

/** A WebSocket echo server (RFC 6455, text and binary frames, any length) on 0.0.0.0:8765, stdlib only. */
const WS_ECHO = String.raw`
import base64, hashlib, socket, struct, threading
GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
def serve(conn):
    buf = bytearray()
    def read(n):
        while len(buf) < n:
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError
            buf.extend(chunk)
        out = bytes(buf[:n]); del buf[:n]; return out
    try:
        while b'\r\n\r\n' not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf.extend(chunk)
        head, _, rest = bytes(buf).partition(b'\r\n\r\n')
        buf[:] = rest
        key = [l.split(b':', 1)[1].strip() for l in head.split(b'\r\n') if l.lower().startswith(b'sec-websocket-key:')][0]
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        conn.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
        while True:
            b1, b2 = read(2)
            n = b2 & 0x7f
            if n == 126: n = struct.unpack('>H', read(2))[0]
            elif n == 127: n = struct.unpack('>Q', read(8))[0]
            mask = read(4) if b2 & 0x80 else b'\0\0\0\0'
            payload = bytes(x ^ mask[i % 4] for i, x in enumerate(read(n)))
            op = b1 & 0x0f
            if op == 8:
                conn.sendall(b'\x88\x00'); return
            if op in (1, 2):
                size = len(payload)
                head = bytes([0x80 | op]) + (bytes([size]) if size < 126 else bytes([126]) + struct.pack('>H', size) if size < 65536 else bytes([127]) + struct.pack('>Q', size))
                conn.sendall(head + payload)
    except EOFError:
        pass
    finally:
        conn.close()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('0.0.0.0', 8765))
server.listen()
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
`;

let paddock: RunningPaddock;
let owner: ApiClient;
let other: ApiClient;
/** No network; http.server on 127.0.0.1:8123, the WebSocket echo on 0.0.0.0:8765. */
let isolatedId: string;
/** A bridged network; http.server on 0.0.0.0:8000. */
let bridgedId: string;

before(async () => {
  paddock = await startPaddock();
  owner = paddock.admin.withToken((await paddock.admin.request('POST', '/api/v1/users', { name: 'olivia' })).body.token);
  other = paddock.admin.withToken((await paddock.admin.request('POST', '/api/v1/users', { name: 'erin' })).body.token);
  const isolated = await owner.submit({
    kind: 'shell',
    files: { 'ws_echo.py': WS_ECHO },
    command:
      'cd /workspace && echo hello-through-the-ingress > greeting.txt; ' +
      'setsid python3 -m http.server --bind 127.0.0.1 --directory /workspace 8123 >/dev/null 2>&1 & ' +
      'setsid python3 /workspace/ws_echo.py >/dev/null 2>&1 & echo service-ready',
    service: true,
    network: 'none',
  });
  const bridged = await owner.submit({
    kind: 'shell',
    command: 'echo bridged > /workspace/b.txt; setsid python3 -m http.server --bind 0.0.0.0 --directory /workspace 8000 >/dev/null 2>&1 & echo service-ready',
    service: true,
    network: 'bridge',
  });
  isolatedId = isolated.id;
  bridgedId = bridged.id;
  for (const id of [isolatedId, bridgedId]) {
    await owner.waitState(id, 'executing');
    await waitFor(`service ${id} to idle`, async () => /idling/.test(await owner.logs(id)));
  }
});

after(async () => {
  await paddock?.stop();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A request to the ingress for `{id}-{port}.localhost` (the Host a browser sends), on loopback. */
function viaIngress(host: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: paddock.ingressPort, path, agent: false, headers: { host: `${host}:${paddock.ingressPort}`, ...headers } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const bearer = (client: ApiClient) => ({ authorization: `Bearer ${client.token}` });

/** Waits until the port's route is there (portdetect, then services/xds, then the ingress: about a second). */
function routed(host: string, path: string): Promise<Answer> {
  return waitFor(`${host} to be routed`, async () => {
    const r = await viaIngress(host, path, bearer(owner));
    return r.status === 200 ? r : undefined;
  });
}

test('an instance with no network: its server on 127.0.0.1 answers at {id}-{port}.localhost to its owner; curl resolves the name itself', async () => {
  const r = await routed(`${isolatedId}-8123.localhost`, '/greeting.txt');
  assert.equal(r.body, 'hello-through-the-ingress\n');
  const e2b = await viaIngress(`8123-${isolatedId}.localhost`, '/greeting.txt', bearer(owner));
  assert.equal(e2b.status, 200, "E2B's form");
  const { stdout } = await run('curl', ['-sS', '--max-time', '20', '-H', `Authorization: Bearer ${owner.token}`, `http://${isolatedId}-8123.localhost:${paddock.ingressPort}/greeting.txt`]);
  assert.equal(stdout, 'hello-through-the-ingress\n');
});

test('a bridged instance: its server on 0.0.0.0 answers too', async () => {
  const r = await routed(`${bridgedId}-8000.localhost`, '/b.txt');
  assert.equal(r.body, 'bridged\n');
});

test('a WebSocket echo inside an instance with no network, through the ingress', async () => {
  await routed(`${isolatedId}-8765.localhost`, '/').catch(() => undefined);
  const ws = await waitFor('the WebSocket to open', () =>
    new Promise<WebSocket | undefined>((resolve) => {
      const socket = new WebSocket(`ws://127.0.0.1:${paddock.ingressPort}/echo`, { headers: { host: `${isolatedId}-8765.localhost:${paddock.ingressPort}`, ...bearer(owner) } });
      socket.once('open', () => resolve(socket));
      socket.once('unexpected-response', () => resolve(undefined));
      socket.once('error', () => resolve(undefined));
    }),
  );
  try {
    const text = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('ping-through-the-ingress');
    assert.equal(await text, 'ping-through-the-ingress');
    const big = Buffer.alloc(200_000, 42);
    const bytes = new Promise<Buffer>((resolve) => ws.once('message', (d: Buffer) => resolve(d)));
    ws.send(big);
    assert.deepEqual(await bytes, big);
  } finally {
    ws.close();
  }
});

test('another user, no credential and a run token get 404 as for nothing at all; a browser is sent to log in', async () => {
  const host = `${isolatedId}-8123.localhost`;
  await routed(host, '/greeting.txt');
  const nothing = await viaIngress('zzzzzzzzzzzzzzzzzzzzzz-8123.localhost', '/', bearer(other));
  assert.equal(nothing.status, 404);
  for (const headers of [bearer(other), {}, { authorization: 'Bearer pdk_not-a-token' }]) {
    const r = await viaIngress(host, '/greeting.txt', headers);
    assert.equal(r.status, 404, JSON.stringify(Object.keys(headers)));
    assert.equal(r.body, nothing.body);
  }
  const browser = await viaIngress(host, '/greeting.txt', { accept: 'text/html' });
  assert.equal(browser.status, 302);
  assert.match(browser.headers.location!, new RegExp(`^${paddock.url}/ui/ingress/login\\?to=`));
  const ticket = await other.request('POST', '/api/v1/ingress/tickets', { host });
  assert.equal(ticket.status, 404, 'no ticket for a host the user may not reach');
});

test('a port with nothing on it: 502 with a page saying the instance runs but nothing listens', async () => {
  const r = await viaIngress(`${isolatedId}-9999.localhost`, '/', { ...bearer(owner), accept: 'text/html' });
  assert.equal(r.status, 502);
  assert.match(r.body, new RegExp(`Instance ${isolatedId} is running, but nothing listens on port 9999 inside it`));
  assert.equal((await viaIngress(`${isolatedId}-9999.localhost`, '/', bearer(other))).status, 404);
});

test('cookie login: a ticket from the API becomes a session cookie of the host', async () => {
  const host = `${bridgedId}-8000.localhost`;
  await routed(host, '/b.txt');
  const t = await owner.request('POST', '/api/v1/ingress/tickets', { host: `${host}:${paddock.ingressPort}` });
  assert.equal(t.status, 201);
  const login = await viaIngress(host, `/__paddock/login?ticket=${encodeURIComponent(t.body.ticket)}&next=${encodeURIComponent('/b.txt')}`);
  assert.equal(login.status, 302);
  assert.equal(login.headers.location, '/b.txt');
  const cookie = login.headers['set-cookie']![0]!;
  assert.match(cookie, /HttpOnly; SameSite=Lax$/);
  const r = await viaIngress(host, '/b.txt', { cookie: cookie.split(';')[0]! });
  assert.deepEqual([r.status, r.body], [200, 'bridged\n']);
});

test('a browser logs in through the login page with the token it keeps, and lands on the page it asked for', async () => {
  const host = `${isolatedId}-8123.localhost`;
  await routed(host, '/greeting.txt');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    // Chromium resolves *.localhost to loopback itself, as curl does.
    await page.goto(`http://${host}:${paddock.ingressPort}/greeting.txt`);
    await page.waitForSelector('#token-form:not([hidden])');
    assert.ok(page.url().startsWith(`${paddock.url}/ui/ingress/login?to=`));
    await page.fill('#token', owner.token);
    await page.click('#token-form button[type=submit]');
    await page.waitForURL(`http://${host}:${paddock.ingressPort}/greeting.txt`);
    assert.equal((await page.textContent('body'))?.trim(), 'hello-through-the-ingress');
    const cookies = await page.context().cookies(`http://${host}:${paddock.ingressPort}/`);
    const session = cookies.find((c) => c.name === 'paddock_session');
    assert.ok(session?.httpOnly, 'the session cookie is HttpOnly');
    assert.equal(session.domain, host, 'host-only');
    assert.ok(!page.url().includes('ticket'), 'the ticket is gone from the address');
  } finally {
    await browser.close();
  }
});

test('a share link opens the port to anyone until it expires', async () => {
  const host = `${bridgedId}-8000.localhost`;
  await routed(host, '/b.txt');
  const shared = await owner.request('POST', `/api/v1/instances/${bridgedId}/ports/8000/share`, { expiresInSeconds: 4 });
  assert.equal(shared.status, 201, JSON.stringify(shared.body));
  const url = new URL(shared.body.url);
  assert.equal(url.hostname, host);
  const link = await viaIngress(host, `/b.txt${url.search}`, { accept: 'text/html' });
  assert.equal(link.status, 302);
  assert.equal(link.headers.location, '/b.txt');
  const cookie = link.headers['set-cookie']![0]!.split(';')[0]!;
  const r = await viaIngress(host, '/b.txt', { cookie });
  assert.deepEqual([r.status, r.body], [200, 'bridged\n']);
  const direct = await viaIngress(host, `/b.txt${url.search}`);
  assert.equal(direct.status, 200, 'curl with the link: no redirect needed, let through');
  await new Promise((resolve) => setTimeout(resolve, 4_500));
  assert.equal((await viaIngress(host, '/b.txt', { cookie })).status, 404, 'expired');
  assert.equal((await viaIngress(host, `/b.txt${url.search}`)).status, 404, 'the link too');
});
