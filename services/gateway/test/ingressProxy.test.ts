// The ingress's HTTP side: routes from the real services/xds control plane (in this process), requests
// checked and relayed over real sockets to HTTP and WebSocket servers on loopback. The one stand-in is the
// relay itself: instead of a broker's Relay RPC (which the e2e test goes through), a port "inside the
// instance" is a loopback server, and a port with no server fails as the broker says "nothing listens".
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { signShareToken } from '../src/ports/shareLinks.js';
import { NothingListensError } from '../src/ingress/brokerRelays.js';
import { IngressServer, LOGIN_PATH } from '../src/ingress/ingressServer.js';
import { IngressTokens } from '../src/ingress/ingressTokens.js';
import { UpstreamPool } from '../src/ingress/upstreamPool.js';
import { XdsRouteClient } from '../src/ingress/xdsRouteClient.js';
import { eventually, log, startTestPlane, type TestPlane } from './ingressPlane.js';

const INSTANCE = 'inst1';
const HOST = `${INSTANCE}-3000.localhost`;
const LOGIN_URL = 'http://gateway.test:7070/ui/ingress/login';
const USERS: Record<string, string> = { pdk_alice: 'alice', pdk_bob: 'bob' };
const OWNERS: Record<string, string> = { [INSTANCE]: 'alice' };
const PROJECT_MEMBERS: Record<string, string[]> = { [INSTANCE]: ['alice', 'bob'] };

let plane: TestPlane;
let routes: XdsRouteClient;
let upstreams: UpstreamPool;
let ingress: IngressServer;
let key: Buffer;
let tokens: IngressTokens;
/** The application "inside the instance" on its port 3000. */
let app: Server;
let appConnections = 0;
/** What the application saw of the last request. */
let lastSeen: { headers: IncomingHttpHeaders; url: string } | undefined;
/** Bytes the slow-reader route managed to write before the ingress stopped taking them. */
let floodWritten = 0;

before(async () => {
  app = createServer((req, res) => {
    lastSeen = { headers: req.headers, url: req.url ?? '' };
    if (req.url === '/echo-body') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
    } else if (req.url === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      req.once('data', () => res.end('data: last\n\n'));
      req.resume();
    } else if (req.url === '/flood') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (!res.destroyed) {
          floodWritten += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': ['app=1', 'paddock_session=forged'] });
      res.end(`hello from ${req.url}`);
    }
  });
  app.on('connection', () => (appConnections += 1));
  const wss = new WebSocketServer({ noServer: true });
  app.on('upgrade', (req, socket, head) => {
    lastSeen = { headers: req.headers, url: req.url ?? '' };
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as AddressInfo).port;

  plane = await startTestPlane();
  plane.beat('b1', '127.0.0.1:7001', [INSTANCE]);
  plane.ports(INSTANCE, 'b1', [3000, 4000]);
  routes = new XdsRouteClient({ address: plane.address, log, nodeId: 'gateway-test' });
  routes.start();
  await eventually('port 3000 routed', () => (routes.table?.match(HOST, '/')?.kind === 'port' ? true : undefined));
  // Port 3000 has the application; on port 4000 the server has just gone, the routes do not know it yet.
  upstreams = new UpstreamPool(async (route) => {
    if (route.port !== 3000) throw new NothingListensError(`nothing listens on port ${route.port} in execution ${route.instanceId}`);
    const socket = connect(appPort, '127.0.0.1');
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return socket;
  });
  key = randomBytes(32);
  tokens = new IngressTokens(key, 3_600_000);
  ingress = await IngressServer.start({
    host: '127.0.0.1',
    port: 0,
    baseDomain: 'localhost',
    routes,
    upstreams,
    tokens,
    userOfToken: async (token) => USERS[token] ?? null,
    ownerOf: async (id) => OWNERS[id] ?? null,
    inProjectOf: async (id, userId) => PROJECT_MEMBERS[id]?.includes(userId) ?? false,
    loginUrl: LOGIN_URL,
    log,
  });
});

after(async () => {
  await ingress?.stop();
  upstreams?.destroy();
  await routes?.stop();
  await plane?.[Symbol.asyncDispose]();
  app?.closeAllConnections();
  await new Promise((r) => app?.close(r));
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request to the ingress on a fresh connection, as a browser or curl would send it to `host`. */
function call(path: string, opts: { host?: string; headers?: Record<string, string>; method?: string; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: ingress.port, path, method: opts.method ?? 'GET', agent: false, headers: { host: opts.host ?? HOST, ...opts.headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const alice = { authorization: 'Bearer pdk_alice' };
const bob = { authorization: 'Bearer pdk_bob' };
const browser = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

test("the owner's bearer token reaches the port; the instance sees no Paddock credential, and gets X-Forwarded-*", async () => {
  const r = await call('/page?q=1', { headers: { ...alice, cookie: 'theme=dark; paddock_session=whatever', 'x-paddock-visibility': 'public', 'x-forwarded-for': '10.1.2.3' } });
  assert.equal(r.status, 200);
  assert.equal(r.body, 'hello from /page?q=1');
  assert.deepEqual(r.headers['set-cookie'], ['app=1'], "the instance cannot set the ingress's cookies");
  const seen = lastSeen!;
  assert.equal(seen.headers.authorization, undefined, "the user's token never reaches the instance");
  assert.equal(seen.headers.cookie, 'theme=dark');
  assert.equal(seen.headers['x-paddock-visibility'], undefined);
  assert.equal(seen.headers.host, HOST, 'Host as the caller sent it');
  assert.equal(seen.headers['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
  assert.equal(seen.headers['x-forwarded-host'], HOST);
  const e2b = await call('/e2b', { host: `3000-${INSTANCE}.LOCALHOST:8080`, headers: alice });
  assert.equal(e2b.status, 200, "E2B's form of the host, in upper case, with a port");
});

test('keep-alive: requests on new client connections reuse the pooled connection to the port', async () => {
  await call('/warm', { headers: alice });
  const before = appConnections;
  for (let i = 0; i < 5; i++) assert.equal((await call(`/n${i}`, { headers: alice })).status, 200);
  assert.equal(appConnections, before, 'no new connection inside the instance');
});

test('a pooled connection the server inside closed while idle is dropped, not reused: a POST after it goes through', async () => {
  await call('/warm', { headers: alice });
  const before = appConnections;
  // As a server does at its keep-alive timeout, or when it restarts.
  app.closeIdleConnections();
  await new Promise((r) => setTimeout(r, 200));
  const r = await call('/echo-body', { method: 'POST', headers: { ...alice, 'content-type': 'text/plain' }, body: Buffer.from('after idle') });
  assert.deepEqual([r.status, r.body], [200, 'after idle']);
  assert.equal(appConnections, before + 1, 'a new connection');
});

test('no one else gets in: another user, no credential, an unknown host, a run token all get the same 404; a browser is sent to log in', async () => {
  const notFound = await call('/', { host: 'nothing-1234.localhost', headers: alice });
  assert.equal(notFound.status, 404);
  for (const headers of [bob, {}, { authorization: 'Bearer prt_x_y' }, { authorization: 'Bearer pdk_unknown' }]) {
    const r = await call('/', { headers });
    assert.equal(r.status, 404, JSON.stringify(headers));
    assert.equal(r.body, notFound.body, 'nothing tells a host that exists from one that does not');
  }
  const bobsBrowser = await call('/', { headers: { ...bob, ...browser } });
  assert.equal(bobsBrowser.status, 404, 'a user who may not see it is not sent to log in');
  assert.equal(bobsBrowser.body, (await call('/', { host: 'nothing-1234.localhost', headers: { ...bob, ...browser } })).body);
  assert.equal((await call('/', { host: 'inst1-3000.example.com', headers: alice })).status, 404, 'another domain');
  const login = await call('/deep/page?x=1', { headers: browser });
  assert.equal(login.status, 302);
  assert.equal(login.headers.location, `${LOGIN_URL}?to=${encodeURIComponent(`http://${HOST}/deep/page?x=1`)}`);
  const unknown = await call('/', { host: 'nothing-1234.localhost', headers: browser });
  assert.equal(unknown.status, 302, 'an unknown host sends a browser to log in too: the redirect tells nothing');
  assert.equal((await call('/__paddock/anything', { headers: alice })).status, 404, 'the ingress keeps /__paddock/ to itself');
});

test('login: a ticket for this host becomes a host-only session cookie, once; the redirect stays on the host', async () => {
  const { ticket } = tokens.issueTicket('alice', HOST);
  const r = await call(`${LOGIN_PATH}?ticket=${encodeURIComponent(ticket)}&next=${encodeURIComponent('/after?x=1')}`, { headers: browser });
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, '/after?x=1');
  const cookie = r.headers['set-cookie']?.[0] ?? '';
  assert.match(cookie, /^paddock_session=[^;]+; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/, 'host-only: no Domain');
  const session = cookie.split(';')[0]!;
  const page = await call('/after', { headers: { ...browser, cookie: `${session}; other=1` } });
  assert.equal(page.status, 200);
  assert.equal(lastSeen?.headers.cookie, 'other=1');
  assert.equal((await call('/', { host: `3000-${INSTANCE}.localhost`, headers: { cookie: session } })).status, 404, 'the cookie is for its own host only');

  const again = await call(`${LOGIN_PATH}?ticket=${encodeURIComponent(ticket)}&next=/`, { headers: browser });
  assert.equal(again.status, 400, 'a ticket works once');
  assert.match(again.body, /used already, or it has expired/);
  const bobs = tokens.issueTicket('bob', HOST);
  const asBob = await call(`${LOGIN_PATH}?ticket=${encodeURIComponent(bobs.ticket)}&next=//evil.example/`, { headers: browser });
  assert.equal(asBob.headers.location, '/', 'no open redirect');
  const bobSession = asBob.headers['set-cookie']![0]!.split(';')[0]!;
  assert.equal((await call('/', { headers: { cookie: bobSession } })).status, 404, "bob's session does not open alice's port");
});

test('a share link becomes a cookie of its host and leaves the URL; it opens that port only, until it expires', async () => {
  const token = signShareToken({ instanceId: INSTANCE, port: 3000, expiresAtMs: Date.now() + 1_500 }, key);
  const r = await call(`/shared?a=1&paddock_share=${encodeURIComponent(token)}&b=2`, { headers: browser });
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, '/shared?a=1&b=2');
  const cookie = r.headers['set-cookie']![0]!;
  assert.match(cookie, /^paddock_share=[^;]+; Path=\/; Max-Age=1; HttpOnly; SameSite=Lax$/);
  const shareCookie = cookie.split(';')[0]!;
  const page = await call('/shared?a=1&b=2', { headers: { cookie: shareCookie } });
  assert.equal(page.status, 200);
  assert.equal(lastSeen?.headers.cookie, undefined, 'the instance never sees the link');
  assert.equal(lastSeen?.url, '/shared?a=1&b=2');
  const direct = await call(`/api?paddock_share=${encodeURIComponent(token)}`, { method: 'POST' });
  assert.equal(direct.status, 200, 'a request that cannot be redirected is let through with the link, which is taken off');
  assert.equal(lastSeen?.url, '/api');
  assert.equal((await call('/', { host: `${INSTANCE}-4000.localhost`, headers: { cookie: shareCookie } })).status, 404, 'not another port');
  await new Promise((r) => setTimeout(r, 1_600));
  assert.equal((await call('/shared', { headers: { cookie: shareCookie } })).status, 404, 'expired');
});

test('a public port is open to anyone', async () => {
  plane.state.setPortVisibility(INSTANCE, 3000, 'public');
  try {
    await eventually('public', () => (routes.table?.match(HOST, '/')?.kind === 'port' && JSON.stringify(routes.table.match(HOST, '/')).includes('public') ? true : undefined));
    assert.equal((await call('/open')).status, 200);
  } finally {
    plane.state.setPortVisibility(INSTANCE, 3000, 'private');
    await eventually('private again', () => (JSON.stringify(routes.table?.match(HOST, '/')).includes('private') ? true : undefined));
  }
});

test("a project port is open to the project's members, not to other users", async () => {
  plane.state.setPortVisibility(INSTANCE, 3000, 'project');
  try {
    await eventually('project', () => (JSON.stringify(routes.table?.match(HOST, '/')).includes('project') ? true : undefined));
    assert.equal((await call('/open', { headers: bob })).status, 200, 'bob is a member of the project');
    assert.equal((await call('/open', { headers: alice })).status, 200, 'the owner');
    assert.equal((await call('/open', { headers: { authorization: 'Bearer pdk_unknown' } })).status, 404);
    assert.equal((await call('/open')).status, 404, 'no credential');
  } finally {
    plane.state.setPortVisibility(INSTANCE, 3000, 'private');
    await eventually('private again', () => (JSON.stringify(routes.table?.match(HOST, '/')).includes('private') ? true : undefined));
  }
  assert.equal((await call('/open', { headers: bob })).status, 404, 'private again: the owner only');
});

test('a running instance with nothing on the port: 502 with a page that says so, to its owner only', async () => {
  const closed = await call('/', { host: `${INSTANCE}-5000.localhost`, headers: { ...alice, ...browser } });
  assert.equal(closed.status, 502);
  assert.match(closed.headers['content-type'] ?? '', /^text\/html/);
  assert.match(closed.body, /Instance inst1 is running, but nothing listens on port 5000 inside it/);
  assert.equal((await call('/', { host: `5000-${INSTANCE}.localhost`, headers: alice })).status, 502);
  assert.equal((await call('/', { host: `${INSTANCE}-5000.localhost`, headers: bob })).status, 404);
  const gone = await call('/', { host: `${INSTANCE}-4000.localhost`, headers: alice });
  assert.equal(gone.status, 502, 'the routes say open, the relay says nothing listens: the same page');
  assert.match(gone.body, /nothing listens on port 4000/);
});

test('bodies stream both ways: 24 MiB up and back intact, and events arrive before the response ends', async () => {
  const body = randomBytes(24 * 1024 * 1024);
  const r = await new Promise<{ status: number; sha: string; bytes: number }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ingress.port, path: '/echo-body', method: 'POST', agent: false, headers: { host: HOST, ...alice } }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sha: hash.digest('hex'), bytes }));
    });
    req.on('error', reject);
    // Chunked, in pieces: the ingress forwards as it reads.
    for (let i = 0; i < body.length; i += 1024 * 1024) req.write(body.subarray(i, i + 1024 * 1024));
    req.end();
  });
  assert.deepEqual(r, { status: 200, sha: createHash('sha256').update(body).digest('hex'), bytes: body.length });

  const events = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ingress.port, path: '/events', method: 'POST', agent: false, headers: { host: HOST, ...alice } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
        // The first event came while the request is still open: ask for the last one.
        if (text === 'data: first\n\n') req.end('go');
      });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.write('');
    req.flushHeaders();
  });
  assert.equal(events, 'data: first\n\ndata: last\n\n');
});

test('backpressure: a client that stops reading stops the server inside from writing', async () => {
  floodWritten = 0;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ingress.port, path: '/flood', agent: false, headers: { host: HOST, ...alice } }, resolve);
    req.on('error', reject);
    req.end();
  });
  res.pause();
  try {
    // Buffers fill along the way (sockets, the ingress's streams), then the server inside is held.
    let settled = -1;
    for (let i = 0; i < 50 && settled !== floodWritten; i++) {
      settled = floodWritten;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(floodWritten, settled, 'the server inside stopped writing');
    assert.ok(floodWritten < 64 * 1024 * 1024, `held after ${floodWritten} bytes`);
    const held = floodWritten;
    let read = 0;
    res.on('data', (d: Buffer) => (read += d.length));
    res.resume();
    await eventually('the server writes again once the client reads', () => (floodWritten > held + 4 * 1024 * 1024 ? true : undefined));
    assert.ok(read > 0);
  } finally {
    res.destroy();
  }
});

test('WebSocket upgrades are relayed to the owner (bearer or session cookie), refused with 404 to anyone else', async () => {
  const open = (headers: Record<string, string>) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${ingress.port}/socket`, { headers: { host: HOST, ...headers } });
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  const ws = await open(alice);
  try {
    const echoed = new Promise<Buffer>((resolve) => ws.once('message', (d: Buffer) => resolve(d)));
    const payload = randomBytes(300_000);
    ws.send(payload);
    assert.deepEqual(await echoed, payload);
    const text = new Promise<string>((resolve) => ws.once('message', (d: Buffer, binary: boolean) => resolve(`${binary}:${d.toString()}`)));
    ws.send('hello');
    assert.equal(await text, 'false:hello');
  } finally {
    ws.close();
  }
  assert.equal(lastSeen?.headers.authorization, undefined, 'the upgrade carries no Paddock credential inside either');
  const { ticket } = tokens.issueTicket('alice', HOST);
  const login = await call(`${LOGIN_PATH}?ticket=${encodeURIComponent(ticket)}`);
  const viaCookie = await open({ cookie: login.headers['set-cookie']![0]!.split(';')[0]! });
  viaCookie.close();
  await assert.rejects(open(bob), /HTTP 404/);
  await assert.rejects(open({}), /HTTP 404/);
});
