// The broker's HTTP relay for an edge proxy, end to end: a whole broker (startBroker) announcing it in its
// heartbeat, reached over mutual TLS with the plane's edge certificate as Envoy reaches it, carrying
// requests, bodies and a WebSocket to a Python server bound to 127.0.0.1 inside instances with no network.
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request, type RequestOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { topics } from '@paddock/bus';
import { ensurePki, loadServiceTls, tlsClientOptions, tlsFilesFromEnv, type ServiceTls } from '@paddock/plane';
import type { StartedBroker } from '../src/broker.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

let t: TestBroker;
let broker: StartedBroker;
/** host:port the heartbeat announces. */
let relayAddress: string;
let edgeTls: ServiceTls;
/** Two instances, each with the server below on its own port. */
let first: string;
let second: string;

const FIRST_PORT = 8123;
const SECOND_PORT = 8124;
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * HTTP/1.1 with keep-alive on 127.0.0.1 only, inside an instance with no network: GET answers what it
 * received (its port, method, path, headers), POST echoes the body, and a WebSocket handshake is answered
 * 101 (with the Sec-WebSocket-Accept of RFC 6455) before every byte is echoed back.
 */
const serverOn = (port: number) => `python3 -c '
import http.server as h, json, base64, hashlib
class H(h.BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"
  def log_message(self, *a): pass
  def reply(self, body, kind):
    self.send_response(200); self.send_header("Content-Type", kind); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
  def do_GET(self):
    if self.headers.get("Upgrade", "").lower() == "websocket":
      accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + "${WEBSOCKET_GUID}").encode()).digest()).decode()
      self.wfile.write(("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n").encode())
      while True:
        data = self.connection.recv(65536)
        if not data: break
        self.connection.sendall(data)
      self.close_connection = True
      return
    self.reply(json.dumps({"port": ${port}, "method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()]}).encode(), "application/json")
  def do_POST(self):
    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
    self.reply(body, "application/octet-stream")
h.ThreadingHTTPServer(("127.0.0.1", ${port}), H).serve_forever()'`;

async function launch(command: string): Promise<string> {
  const executionId = randomUUID();
  await broker.instances.launch({ executionId, ownerId: 'alice', spec: shellSpec(command, { timeoutMs: 300_000 }) });
  return executionId;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly reusedSocket: boolean;
}

interface Sent {
  readonly instanceId: string;
  readonly port: number | string;
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  readonly tls?: RequestOptions;
  readonly agent?: Agent | false;
}

/** What Envoy sends the relay: the route's headers, over mutual TLS with the edge's certificate. */
function viaRelay(sent: Sent): Promise<Answer> {
  const [host, port] = [relayAddress.slice(0, relayAddress.lastIndexOf(':')), Number(relayAddress.slice(relayAddress.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...(sent.tls ?? tlsClientOptions(edgeTls, 'broker')),
        host,
        port,
        method: sent.method ?? 'GET',
        path: sent.path ?? '/',
        agent: sent.agent ?? false,
        headers: { host: `${sent.instanceId}-${sent.port}.paddock.test`, 'x-paddock-instance-id': sent.instanceId, 'x-paddock-port': String(sent.port), ...sent.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), reusedSocket: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(sent.body);
  });
}

/** The server inside takes a moment to start: asks until it answers (502 meanwhile). */
async function whenServing(instanceId: string, port: number): Promise<void> {
  for (let attempt = 0; attempt < 80; attempt++) {
    if ((await viaRelay({ instanceId, port })).status === 200) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`nothing answered on port ${port} of ${instanceId}`);
}

before(async () => {
  t = await setUpTestBroker('edge');
  const announced = new Promise<string>((resolve) => {
    const sub = t.bus.subscribe(topics.brokerHeartbeat, t.brokerId, ({ message }) => {
      if (message.relayAddress === '') return;
      void sub.stop();
      resolve(message.relayAddress);
    });
  });
  broker = await t.start();
  relayAddress = await announced;
  edgeTls = await loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: t.env['PADDOCK_HOME'] }, 'edge'));
  first = await launch(serverOn(FIRST_PORT));
  second = await launch(serverOn(SECOND_PORT));
  await Promise.all([whenServing(first, FIRST_PORT), whenServing(second, SECOND_PORT)]);
});

after(async () => {
  await t?.stop();
});

test('the heartbeat announces the relay on loopback, on a port of its own', () => {
  assert.match(relayAddress, /^127\.0\.0\.1:\d+$/);
  assert.notEqual(relayAddress, broker.grpcAddress);
});

test("a server bound to 127.0.0.1 in an instance with no network answers through the relay; it gets the request as sent, without Paddock's or hop-by-hop headers", async () => {
  const r = await viaRelay({
    instanceId: first,
    port: FIRST_PORT,
    path: '/as-sent?paddock_share=secret',
    headers: { 'x-paddock-path': '/app/page?x=1', 'x-paddock-visibility': 'private', 'x-custom': 'kept', 'keep-alive': 'timeout=5', te: 'trailers', 'x-forwarded-for': '203.0.113.9' },
  });
  assert.equal(r.status, 200, r.body.toString());
  const seen = JSON.parse(r.body.toString()) as { port: number; method: string; path: string; headers: [string, string][] };
  assert.equal(seen.port, FIRST_PORT);
  assert.equal(seen.path, '/app/page?x=1', 'the target the authorization left, not the one the caller sent');
  const headers = new Map(seen.headers.map(([k, v]) => [k.toLowerCase(), v]));
  assert.equal(headers.get('host'), `${first}-${FIRST_PORT}.paddock.test`, 'Host as the caller sent it');
  assert.equal(headers.get('x-custom'), 'kept');
  assert.equal(headers.get('x-forwarded-for'), '203.0.113.9', "Envoy's X-Forwarded-For passes");
  for (const gone of ['x-paddock-instance-id', 'x-paddock-port', 'x-paddock-path', 'x-paddock-visibility', 'keep-alive', 'te']) assert.equal(headers.has(gone), false, gone);
  const own = await viaRelay({ instanceId: first, port: FIRST_PORT, path: '/own?q=1' });
  assert.equal((JSON.parse(own.body.toString()) as { path: string }).path, '/own?q=1', 'without x-paddock-path, the request target');
});

test('one connection from Envoy carries requests for different instances, each to its own; a body goes up and comes back whole', async () => {
  const agent = new Agent({ ...tlsClientOptions(edgeTls, 'broker'), keepAlive: true, maxSockets: 1 });
  try {
    const a = await viaRelay({ instanceId: first, port: FIRST_PORT, agent });
    const b = await viaRelay({ instanceId: second, port: SECOND_PORT, agent });
    const c = await viaRelay({ instanceId: first, port: FIRST_PORT, agent });
    assert.deepEqual([a, b, c].map((r) => (JSON.parse(r.body.toString()) as { port: number }).port), [FIRST_PORT, SECOND_PORT, FIRST_PORT]);
    assert.deepEqual([b.reusedSocket, c.reusedSocket], [true, true], 'on the one connection');
    const body = randomBytes(16 * 1024 * 1024);
    const echoed = await viaRelay({ instanceId: second, port: SECOND_PORT, method: 'POST', body, agent, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(echoed.status, 200);
    assert.equal(echoed.body.length, body.length);
    assert.ok(echoed.body.equals(body), '16 MiB up and back, intact');
  } finally {
    agent.destroy();
  }
});

test('a WebSocket upgrade is answered by the server inside, then bytes go both ways', async () => {
  const key = randomBytes(16).toString('base64');
  const [host, port] = [relayAddress.slice(0, relayAddress.lastIndexOf(':')), Number(relayAddress.slice(relayAddress.lastIndexOf(':') + 1))];
  const { headers, socket } = await new Promise<{ headers: IncomingHttpHeaders; socket: Duplex }>((resolve, reject) => {
    const req = request({
      ...tlsClientOptions(edgeTls, 'broker'),
      host,
      port,
      path: '/socket',
      agent: false,
      headers: {
        host: `${first}-${FIRST_PORT}.paddock.test`,
        'x-paddock-instance-id': first,
        'x-paddock-port': String(FIRST_PORT),
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': key,
        'sec-websocket-version': '13',
      },
    });
    req.on('upgrade', (res, upgraded) => resolve({ headers: res.headers, socket: upgraded }));
    req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  try {
    assert.equal(headers['sec-websocket-accept'], createHash('sha1').update(`${key}${WEBSOCKET_GUID}`).digest('base64'), "the server's own handshake");
    assert.equal(headers.upgrade, 'websocket');
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    const sent = [randomBytes(100), randomBytes(200 * 1024)];
    for (const chunk of sent) socket.write(chunk);
    const total = sent.reduce((n, c) => n + c.length, 0);
    for (let i = 0; i < 100 && Buffer.concat(received).length < total; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(Buffer.concat(received).equals(Buffer.concat(sent)), 'every byte back, in order');
  } finally {
    socket.destroy();
  }
});

test('only the edge gets in: no client certificate, the gateway\'s, or an edge certificate of another plane are refused', async () => {
  const gatewayTls = await loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: t.env['PADDOCK_HOME'] }, 'gateway'));
  const strangerPlane = await ensurePki(`${t.services.dir}/stranger-plane`, { services: ['edge'] });
  const strangerTls = await loadServiceTls({ service: 'edge', caFile: strangerPlane.caFile, certFile: strangerPlane.services.edge!.certFile, keyFile: strangerPlane.services.edge!.keyFile });
  const refused: [string, RequestOptions][] = [
    ['no certificate', { ca: edgeTls.ca, servername: 'broker' }],
    ["the gateway's certificate", tlsClientOptions(gatewayTls, 'broker')],
    ["another plane's edge certificate", { ...tlsClientOptions(strangerTls, 'broker'), ca: edgeTls.ca }],
  ];
  for (const [who, tls] of refused) {
    await assert.rejects(viaRelay({ instanceId: first, port: FIRST_PORT, tls }), (err: NodeJS.ErrnoException) => /ECONNRESET|socket hang up|alert|certificate/i.test(`${err.code} ${err.message}`), who);
  }
  assert.equal((await viaRelay({ instanceId: first, port: FIRST_PORT })).status, 200, 'the edge, still');
});

test('an instance this broker does not run is 404, a port nothing listens on 502 in the words of the ingress, a request that names no target 400', async () => {
  const unknown = await viaRelay({ instanceId: randomUUID(), port: FIRST_PORT });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.toString(), 'Not found: No Paddock instance port answers at this address.\n');
  const closed = await viaRelay({ instanceId: first, port: 8999 });
  assert.equal(closed.status, 502);
  assert.equal(
    closed.body.toString(),
    `Nothing listens on port 8999: Instance ${first} is running, but nothing listens on port 8999 inside it. Start a server on that port (bound to 0.0.0.0 or 127.0.0.1), then reload this page.\n`,
  );
  const html = await viaRelay({ instanceId: first, port: 8999, headers: { accept: 'text/html' } });
  assert.match(html.headers['content-type'] ?? '', /^text\/html/);
  assert.match(html.body.toString(), /<h1>Nothing listens on port 8999<\/h1>/);
  const nameless = await viaRelay({ instanceId: '', port: '' });
  assert.equal(nameless.status, 400);
  assert.match(nameless.body.toString(), /x-paddock-instance-id and x-paddock-port/);
  const spaced = await viaRelay({ instanceId: first, port: FIRST_PORT, headers: { 'x-paddock-path': '/a b' } });
  assert.equal(spaced.status, 400, 'a target Node could not send is refused, and the relay goes on');
  assert.equal((await viaRelay({ instanceId: first, port: FIRST_PORT })).status, 200);
});
