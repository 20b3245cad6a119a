// The ingress as startGateway runs it, on a real PostgreSQL and nats-server, following a real services/xds
// control plane: the key file, the ticket API (owner only), the login page, the login round trip through
// the ingress, and who is told what about a running instance on whose port nothing listens.
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '@paddock/testkit';
import { startGateway, type StartedGateway } from '../src/gateway.js';
import { TenancyStore } from '../src/tenancy/tenancyStore.js';
import { UserStore } from '../src/users/userStore.js';
import { eventually, startTestPlane, type TestPlane } from './ingressPlane.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
let plane: TestPlane;
let gateway: StartedGateway;
let ingressPort: number;
let alice: string;
let bob: string;
/** A viewer in alice's team: a member of the project her instance runs in. */
let carol: string;
let admin: string;
let instanceId: string;

before(async () => {
  stack = await startTestStack();
  plane = await startTestPlane();
  ingressPort = await freePort();
  gateway = await startGateway(stack.config({ PADDOCK_INGRESS_PORT: String(ingressPort), PADDOCK_BRIDGE_PORT: '0', PADDOCK_XDS_URL: `grpc://${plane.address}` }), stack.log);
  const users = new UserStore(stack.pool);
  const made = await users.create('alice');
  alice = made.token;
  bob = (await users.create('bob')).token;
  const carolMade = await users.create('carol');
  carol = carolMade.token;
  const tenancy = new TenancyStore(stack.pool);
  const personal = await tenancy.personalProjectOf(made.user.id);
  await tenancy.addMember(personal!.teamId, carolMade.user.id, 'viewer');
  admin = (await readFile(join(stack.home, 'admin-token'), 'utf8')).trim();
  const created = await gateway.app.inject({
    method: 'POST',
    url: '/api/v1/executions',
    headers: { authorization: `Bearer ${alice}` },
    payload: { kind: 'shell', command: 'sleep 600' },
  });
  assert.equal(created.statusCode, 201, created.body);
  instanceId = created.json<{ id: string }>().id;
  // What a broker holding it says: running, with no port open yet.
  plane.beat('b1', '127.0.0.1:7001', [instanceId]);
  await eventually('the instance in the ingress routes', () => (gateway.ingress?.routes.table?.match(`${instanceId}-8000.localhost`, '/')?.kind === 'closed' ? true : undefined));
});

after(async () => {
  await gateway?.stop();
  await plane?.[Symbol.asyncDispose]();
  await stack?.stop();
});

function ticket(token: string | undefined, host: string) {
  return gateway.app.inject({ method: 'POST', url: '/api/v1/ingress/tickets', headers: token ? { authorization: `Bearer ${token}` } : {}, payload: { host } });
}

/** A request to the ingress for `host`, on a fresh connection. */
function viaIngress(host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ingressPort, path, agent: false, headers: { host, ...headers } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the ingress key is made at the first start: 32 random bytes, mode 0600, beside the plane', async () => {
  const file = join(stack.home, 'plane', 'ingress-key');
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64').length, 32);
});

test("a login ticket is for the owner of a running instance and its project's members; any other caller gets what the API always says", async () => {
  const host = `${instanceId}-8000.localhost:${ingressPort}`;
  const mine = await ticket(alice, host);
  assert.equal(mine.statusCode, 201, mine.body);
  const body = mine.json<{ ticket: string; host: string; expiresAt: string; loginUrl: string }>();
  assert.equal(body.host, `${instanceId}-8000.localhost`, 'bound to the host name, whatever port the URL had');
  assert.equal(body.loginUrl, `http://${instanceId}-8000.localhost:${ingressPort}/__paddock/login?ticket=${encodeURIComponent(body.ticket)}`);
  const elsewhere = (await ticket(alice, `${instanceId}-8000.localhost:9999`)).json<{ loginUrl: string }>();
  assert.ok(elsewhere.loginUrl.startsWith(`http://${instanceId}-8000.localhost:${ingressPort}/`), "the ingress's own origin, never the port the page was given");
  assert.ok(Date.parse(body.expiresAt) - Date.now() <= 60_000);
  assert.equal(mine.headers['cache-control'], 'no-store');
  assert.equal((await ticket(alice, `8000-${instanceId}.LOCALHOST`)).statusCode, 201, "E2B's form");
  assert.equal((await ticket(bob, host)).statusCode, 404, "another user's instance");
  assert.equal((await ticket(admin, host)).statusCode, 404, 'the admin is no owner of it either, nor a member of its team');
  assert.equal((await ticket(carol, host)).statusCode, 201, "a member of the instance's project (its ports' visibility decides what her session opens)");
  assert.equal((await ticket(alice, 'nothing0000000000000000-8000.localhost')).statusCode, 404);
  assert.equal((await ticket(alice, `${instanceId}-8000.example.com`)).statusCode, 400, 'not a host of this ingress');
  assert.equal((await ticket(alice, `${instanceId}-0.localhost`)).statusCode, 400, 'port out of range');
  assert.equal((await ticket(undefined, host)).statusCode, 401);
  const doc = (await gateway.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<{ paths: Record<string, unknown> }>();
  assert.ok(doc.paths['/api/v1/ingress/tickets'], 'documented');
});

test('a browser without a session is sent to the login page on the main listener, which is served with its script', async () => {
  const host = `${instanceId}-8000.localhost:${ingressPort}`;
  const r = await viaIngress(host, '/app?x=1', { accept: 'text/html' });
  assert.equal(r.status, 302);
  const location = new URL(r.headers.location!);
  assert.equal(`${location.origin}${location.pathname}`, `${gateway.url}/ui/ingress/login`);
  assert.equal(location.searchParams.get('to'), `http://${host}/app?x=1`);
  const page = await fetch(`${gateway.url}/ui/ingress/login?to=${encodeURIComponent(`http://${host}/`)}`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  assert.match(await page.text(), /\/ui\/assets\/ingress\/login\.js/);
  const script = await fetch(`${gateway.url}/ui/assets/ingress/login.js`);
  assert.equal(script.status, 200);
  assert.match(await script.text(), /\/api\/v1\/ingress\/tickets/);
});

test('login round trip: ticket -> session cookie on the host -> the 502 page of a port with nothing on it; others get 404', async () => {
  const host = `${instanceId}-8000.localhost:${ingressPort}`;
  const { loginUrl } = (await ticket(alice, host)).json<{ loginUrl: string }>();
  const url = new URL(loginUrl);
  url.searchParams.set('next', '/dash?tab=1');
  const login = await viaIngress(host, `${url.pathname}${url.search}`, { accept: 'text/html' });
  assert.equal(login.status, 302);
  assert.equal(login.headers.location, '/dash?tab=1');
  const cookie = login.headers['set-cookie']![0]!.split(';')[0]!;
  const page = await viaIngress(host, '/dash?tab=1', { accept: 'text/html', cookie });
  assert.equal(page.status, 502);
  assert.match(page.body, new RegExp(`Instance ${instanceId} is running, but nothing listens on port 8000 inside it`));
  assert.equal((await viaIngress(host, '/', { authorization: `Bearer ${alice}` })).status, 502, 'with the bearer token too');
  assert.equal((await viaIngress(host, '/', { authorization: `Bearer ${bob}` })).status, 404);
  assert.equal((await viaIngress(host, '/', { authorization: `Bearer ${admin}` })).status, 404);
  assert.equal((await viaIngress(`${instanceId}-8001.localhost`, '/', { cookie })).status, 404, "the session is this host's only");
});
