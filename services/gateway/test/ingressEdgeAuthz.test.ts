// Envoy's authorization of each request at the edge (ext_authz over HTTP, as services/xds configures it),
// answered by the ingress with the decision it makes for its own requests. Checks are sent as Envoy sends
// them: to the request's Host (its port stripped), the request's method, its path and query after the
// check prefix, Cookie, Accept and Authorization, and x-paddock-upgrade for the Upgrade header. Routes
// come from a real services/xds control plane in this process; each refusal is compared with what the
// ingress itself answers the same request.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { after, before, test } from 'node:test';
import { EDGE_AUTHZ_PATH_PREFIX } from '@paddock/xds';
import { signShareToken } from '../src/ports/shareLinks.js';
import { NothingListensError } from '../src/ingress/brokerRelays.js';
import { checkedTarget } from '../src/ingress/edgeAuthz.js';
import { IngressServer, LOGIN_PATH } from '../src/ingress/ingressServer.js';
import { IngressTokens } from '../src/ingress/ingressTokens.js';
import { UpstreamPool } from '../src/ingress/upstreamPool.js';
import { XdsRouteClient } from '../src/ingress/xdsRouteClient.js';
import { eventually, log, startTestPlane, type TestPlane } from './ingressPlane.js';

const INSTANCE = 'inst1';
const HOST = `${INSTANCE}-3000.localhost`;
const PUBLIC_HOST = `${INSTANCE}-4000.localhost`;
const CLOSED_HOST = `${INSTANCE}-5000.localhost`;
const LOGIN_URL = 'http://gateway.test:7070/ui/ingress/login';
const USERS: Record<string, string> = { pdk_alice: 'alice', pdk_bob: 'bob' };

let plane: TestPlane;
let routes: XdsRouteClient;
let upstreams: UpstreamPool;
let ingress: IngressServer;
let key: Buffer;
let tokens: IngressTokens;

before(async () => {
  plane = await startTestPlane();
  plane.beat('b1', '127.0.0.1:7001', [INSTANCE]);
  plane.ports(INSTANCE, 'b1', [3000, 4000]);
  plane.state.setPortVisibility(INSTANCE, 4000, 'public');
  routes = new XdsRouteClient({ address: plane.address, log, nodeId: 'gateway-authz-test' });
  routes.start();
  await eventually('the routes', () => (JSON.stringify(routes.table?.match(PUBLIC_HOST, '/') ?? null).includes('"public"') ? true : undefined));
  // The checks never relay: whatever is allowed goes on through Envoy to the broker, not through here.
  upstreams = new UpstreamPool(async (route) => Promise.reject(new NothingListensError(`nothing listens on port ${route.port} in execution ${route.instanceId}`)));
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
    ownerOf: async (id) => (id === INSTANCE ? 'alice' : null),
    inProjectOf: async () => false,
    loginUrl: LOGIN_URL,
    log,
  });
});

after(async () => {
  await ingress?.stop();
  upstreams?.destroy();
  await routes?.stop();
  await plane?.[Symbol.asyncDispose]();
});

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

function send(path: string, host: string, method: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ingress.port, path, method, agent: false, headers: { host, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Asked {
  readonly host?: string;
  readonly method?: string;
  readonly headers?: Record<string, string>;
}

/** Envoy's check of a request for `path` (with its query) on `host`: no body, Content-Length 0. */
function check(path: string, asked: Asked = {}): Promise<Answer> {
  return send(`${EDGE_AUTHZ_PATH_PREFIX}${path}`, asked.host ?? HOST, asked.method ?? 'GET', { 'content-length': '0', ...asked.headers });
}

/** The same request sent to the ingress itself. */
function direct(path: string, asked: Asked = {}): Promise<Answer> {
  return send(path, asked.host ?? HOST, asked.method ?? 'GET', asked.headers ?? {});
}

/** What a caller sees of a refusal: Envoy passes on its status, body and these headers. */
function refusalOf(a: Answer): unknown {
  const { status, body, headers } = a;
  return { status, body, location: headers.location, cookie: headers['set-cookie'], type: headers['content-type'], csp: headers['content-security-policy'] };
}

/** Asserts that the check refuses `path` exactly as the ingress does, and returns the answer. */
async function refusedAlike(path: string, asked: Asked = {}): Promise<Answer> {
  const [checked, itself] = await Promise.all([check(path, asked), direct(path, asked)]);
  assert.notEqual(checked.status, 200, `${asked.host ?? HOST}${path} is refused`);
  assert.deepEqual(refusalOf(checked), refusalOf(itself), `${asked.host ?? HOST}${path}: the check answers as the ingress does`);
  return checked;
}

const alice = { authorization: 'Bearer pdk_alice' };
const bob = { authorization: 'Bearer pdk_bob' };
const browser = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

test("the owner is allowed: 200 with where the request goes, and the owner's token taken off it", async () => {
  const r = await check('/app/page?x=1', { headers: { ...alice, accept: '*/*' } });
  assert.equal(r.status, 200);
  assert.equal(r.body, '');
  assert.equal(r.headers['x-paddock-instance-id'], INSTANCE);
  assert.equal(r.headers['x-paddock-port'], '3000');
  assert.equal(r.headers['x-paddock-path'], '/app/page?x=1');
  assert.equal(r.headers['x-envoy-auth-headers-to-remove'], 'authorization', 'the instance never gets a Paddock token');
  assert.equal(r.headers['cookie'], undefined);
  const e2b = await check('/', { host: `3000-${INSTANCE}.localhost`, headers: alice });
  assert.deepEqual([e2b.status, e2b.headers['x-paddock-port']], [200, '3000'], "E2B's form");
  const post = await check('/api', { method: 'POST', headers: alice });
  assert.equal(post.status, 200, 'any method: Envoy asks with the request\'s own');
  const mine = await check('/', { headers: { authorization: 'Bearer app-token-of-the-instance', cookie: 'paddock_session=forged; theme=dark' } });
  assert.equal(mine.status, 404, 'an application token is no Paddock credential; a forged session opens nothing');
});

test('anyone else is refused as the ingress refuses them: a stranger, no credential, a run token, an unknown host all get the same 404', async () => {
  const unknown = await refusedAlike('/', { host: 'nothing-1234.localhost', headers: alice });
  assert.equal(unknown.status, 404);
  for (const headers of [bob, {}, { authorization: 'Bearer prt_x_y' }, { authorization: 'Bearer pdk_unknown' }]) {
    const r = await refusedAlike('/', { headers });
    assert.equal(r.status, 404, JSON.stringify(headers));
    assert.equal(r.body, unknown.body, 'nothing tells a host that exists from one that does not');
  }
  const bobsBrowser = await refusedAlike('/', { headers: { ...bob, ...browser } });
  assert.equal(bobsBrowser.status, 404, 'a user who may not see it is not sent to log in');
  assert.match(bobsBrowser.headers['content-type'] ?? '', /^text\/html/, 'the page, as a browser gets it');
  assert.equal((await refusedAlike('/', { host: 'inst1-3000.example.com', headers: alice })).status, 404, 'another domain');
  assert.equal((await refusedAlike('/__paddock/anything', { headers: alice })).status, 404, "the ingress's own paths are never an instance's");
  assert.equal((await check(`${EDGE_AUTHZ_PATH_PREFIX}/`, { headers: alice })).status, 404, 'a check of a check: a path the ingress keeps');
});

test('a browser without a credential is sent to log in, with the same redirect the ingress gives; not for an upgrade', async () => {
  const login = await refusedAlike('/deep/page?x=1', { headers: browser });
  assert.equal(login.status, 302);
  assert.equal(login.headers.location, `${LOGIN_URL}?to=${encodeURIComponent(`http://${HOST}/deep/page?x=1`)}`);
  const websocket = await check('/socket', { headers: { ...browser, 'x-paddock-upgrade': 'websocket' } });
  assert.equal(websocket.status, 404, 'a WebSocket cannot follow a redirect');
  const none = await check('/socket', { headers: { ...browser, 'x-paddock-upgrade': '-' } });
  assert.equal(none.status, 302, "Envoy's placeholder for a missing Upgrade header is no upgrade");
});

test('a login ticket through the check becomes the session cookie of the host, which is then allowed, without the cookie', async () => {
  const { ticket } = tokens.issueTicket('alice', HOST);
  const login = await check(`${LOGIN_PATH}?ticket=${encodeURIComponent(ticket)}&next=${encodeURIComponent('/after')}`, { headers: browser });
  assert.equal(login.status, 302);
  assert.equal(login.headers.location, '/after');
  const session = login.headers['set-cookie']![0]!.split(';')[0]!;
  assert.match(session, /^paddock_session=/);
  const withOthers = await check('/after', { headers: { ...browser, cookie: `${session}; theme=dark` } });
  assert.equal(withOthers.status, 200);
  assert.equal(withOthers.headers['cookie'], 'theme=dark', "the instance's own cookies go on, the session does not");
  assert.equal(withOthers.headers['x-envoy-auth-headers-to-remove'], undefined);
  const alone = await check('/after', { headers: { cookie: session } });
  assert.equal(alone.status, 200);
  assert.equal(alone.headers['x-envoy-auth-headers-to-remove'], 'cookie');
  assert.equal((await refusedAlike('/', { host: `3000-${INSTANCE}.localhost`, headers: { cookie: session } })).status, 404, 'the cookie is for its own host only');
});

test('a share link: a browser gets the cookie and the address without it, as from the ingress; any other client is allowed with the link taken off', async () => {
  const token = signShareToken({ instanceId: INSTANCE, port: 3000, expiresAtMs: Date.now() + 60_000 }, key);
  const link = `/shared?a=1&paddock_share=${encodeURIComponent(token)}&b=2`;
  const navigation = await refusedAlike(link, { headers: browser });
  assert.equal(navigation.status, 302);
  assert.equal(navigation.headers.location, '/shared?a=1&b=2');
  const shareCookie = navigation.headers['set-cookie']![0]!.split(';')[0]!;
  assert.match(shareCookie, /^paddock_share=/);
  const curl = await check(link, { method: 'POST' });
  assert.equal(curl.status, 200);
  assert.equal(curl.headers['x-paddock-path'], '/shared?a=1&b=2', 'the instance never sees the link');
  const withCookie = await check('/shared', { headers: { cookie: shareCookie } });
  assert.equal(withCookie.status, 200);
  assert.equal(withCookie.headers['x-envoy-auth-headers-to-remove'], 'cookie');
  assert.equal((await refusedAlike('/', { host: `${INSTANCE}-5000.localhost`, headers: { cookie: shareCookie } })).status, 404, 'not another port');
});

test('a public port is allowed to anyone', async () => {
  const r = await check('/open', { host: PUBLIC_HOST });
  assert.deepEqual([r.status, r.headers['x-paddock-port'], r.headers['x-envoy-auth-headers-to-remove']], [200, '4000', undefined]);
  assert.equal((await check('/open', { host: PUBLIC_HOST, headers: bob })).status, 200);
});

test("a port nothing listens on: its owner is allowed on to the broker, which says so; anyone else is refused", async () => {
  const owner = await check('/', { host: CLOSED_HOST, headers: alice });
  assert.equal(owner.status, 200);
  assert.deepEqual([owner.headers['x-paddock-instance-id'], owner.headers['x-paddock-port']], [INSTANCE, '5000'], 'the port from the Host: the route names none');
  assert.equal((await direct('/', { host: CLOSED_HOST, headers: alice })).status, 502, 'the ingress itself answers its 502');
  assert.equal((await refusedAlike('/', { host: CLOSED_HOST, headers: bob })).status, 404);
  assert.equal((await refusedAlike('/', { host: `5000-${INSTANCE}.localhost` })).status, 404);
});

test('a check is about the target after the prefix; a path that only begins like it is none', () => {
  assert.equal(checkedTarget(`${EDGE_AUTHZ_PATH_PREFIX}/a/b?c=1`), '/a/b?c=1');
  assert.equal(checkedTarget(`${EDGE_AUTHZ_PATH_PREFIX}?c=1`), '/?c=1');
  assert.equal(checkedTarget(EDGE_AUTHZ_PATH_PREFIX), '/');
  assert.equal(checkedTarget(`${EDGE_AUTHZ_PATH_PREFIX}x/a`), undefined);
  assert.equal(checkedTarget('/a'), undefined);
  assert.equal(checkedTarget(undefined), undefined);
});
