// The egress allowlist and its proxy: which hosts an entry allows, and the proxy on its unix socket
// forwarding to an allowed server on this host's loopback, refusing any other host with a 403 that names
// the list, without connecting to it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@paddock/telemetry';
import { EgressAllowlist } from '../src/egress/allowlist.js';
import { EgressProxies } from '../src/egress/egressProxies.js';
import { EgressRuleError } from '../src/egress/errors.js';
import { startEgressProxy } from '../src/egress/egressProxy.js';
import { isInternalAddress } from '../src/egress/destination.js';

const log = createLogger('egress-test', 'silent');

test('an entry allows its host on 80 and 443, a port only that port, *.domain only subdomains', () => {
  const list = new EgressAllowlist(['pypi.org', 'github.com:443', '*.npmjs.org', '127.0.0.1:8080']);
  assert.equal(list.allows('pypi.org', 443), true);
  assert.equal(list.allows('PyPI.org.', 80), true);
  assert.equal(list.allows('pypi.org', 22), false);
  assert.equal(list.allows('files.pypi.org', 443), false);
  assert.equal(list.allows('github.com', 443), true);
  assert.equal(list.allows('github.com', 80), false);
  assert.equal(list.allows('registry.npmjs.org', 443), true);
  assert.equal(list.allows('a.b.npmjs.org', 80), true);
  assert.equal(list.allows('npmjs.org', 443), false);
  assert.equal(list.allows('evilnpmjs.org', 443), false);
  assert.equal(list.allows('127.0.0.1', 8080), true);
  assert.equal(list.allows('127.0.0.1', 80), false);
  assert.equal(list.describe(), 'pypi.org, github.com:443, *.npmjs.org, 127.0.0.1:8080');
});

test('an entry that is not a host is refused, naming it', () => {
  for (const entry of ['', 'http://pypi.org', 'pypi.org:0', 'pypi.org:70000', 'a*.b.org', '*.org', 'pypi.org/simple', '*.1.2.3.4', 'under_score.org']) {
    assert.throws(() => new EgressAllowlist(['pypi.org', entry]), (err: unknown) => err instanceof EgressRuleError && err.entry === entry && err.message.includes(`"${entry}"`), entry);
  }
});

let dir: string;
let upstream: Server;
let upstreamPort: number;
/** A TCP server that must never be connected to: it counts what reaches it. */
let forbidden: TcpServer;
let forbiddenPort: number;
let forbiddenConnections = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-egress-'));
  upstream = createServer((req, res) => res.end(`hello from ${req.method} ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as AddressInfo).port;
  forbidden = createTcpServer((socket) => {
    forbiddenConnections++;
    socket.destroy();
  });
  await new Promise<void>((r) => forbidden.listen(0, '127.0.0.1', r));
  forbiddenPort = (forbidden.address() as AddressInfo).port;
});

after(async () => {
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  await new Promise((r) => forbidden.close(r));
  await rm(dir, { recursive: true, force: true });
});

/** One plain HTTP request through the proxy's socket, with an absolute URI as a client of a proxy sends. */
function viaProxy(socketPath: string, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: url, headers: { host: new URL(url).host }, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** A CONNECT through the proxy's socket; resolves with the status line and, once open, the tunnel's answer to `send`. */
function tunnelVia(socketPath: string, authority: string, send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let text = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('connect', () => socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
    socket.on('data', (d: Buffer) => {
      const before = text;
      text += d.toString();
      if (!before.includes('\r\n\r\n') && text.startsWith('HTTP/1.1 200') && text.includes('\r\n\r\n')) socket.write(send);
    });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

test('the proxy forwards plain HTTP and tunnels CONNECT to an allowed host, and refuses another with a 403 that names the list', async () => {
  const list = new EgressAllowlist([`127.0.0.1:${upstreamPort}`, `localhost:${upstreamPort}`]);
  // The test's hosts are on loopback, which a proxy reaches only when the broker allows internal addresses.
  await using proxy = await startEgressProxy(join(dir, 'one.sock'), list, log, { allowInternal: true });

  const allowed = await viaProxy(proxy.socketPath, `http://127.0.0.1:${upstreamPort}/simple/?q=1`);
  assert.deepEqual(allowed, { status: 200, body: 'hello from GET /simple/?q=1' });

  const tunnelled = await tunnelVia(proxy.socketPath, `localhost:${upstreamPort}`, `GET /through HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  assert.match(tunnelled, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 200 OK/);
  assert.match(tunnelled, /hello from GET \/through$/);

  const expected = `egress to 127.0.0.1:${forbiddenPort} is not allowed; this execution may reach: 127.0.0.1:${upstreamPort}, localhost:${upstreamPort}\n`;
  const refused = await viaProxy(proxy.socketPath, `http://127.0.0.1:${forbiddenPort}/`);
  assert.deepEqual(refused, { status: 403, body: expected });
  const refusedTunnel = await tunnelVia(proxy.socketPath, `127.0.0.1:${forbiddenPort}`, '');
  assert.match(refusedTunnel, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.ok(refusedTunnel.endsWith(`\r\n\r\n${expected}`), refusedTunnel);
  assert.equal(forbiddenConnections, 0, 'a refused host is never connected to');

  await proxy.close();
  await assert.rejects(stat(proxy.socketPath), { code: 'ENOENT' });
});

test('an allowed name that leads to this host or a private network is refused unless the broker allows internal addresses', async () => {
  const list = new EgressAllowlist([`localhost:${upstreamPort}`, `127.0.0.1:${upstreamPort}`]);
  await using proxy = await startEgressProxy(join(dir, 'internal.sock'), list, log);
  const refused = await viaProxy(proxy.socketPath, `http://localhost:${upstreamPort}/`);
  assert.equal(refused.status, 403);
  assert.match(refused.body, new RegExp(`^egress to localhost:${upstreamPort} is not allowed: localhost resolves to .*an address of this host or of a private network`));
  const tunnel = await tunnelVia(proxy.socketPath, `127.0.0.1:${upstreamPort}`, '');
  assert.match(tunnel, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(tunnel, /127\.0\.0\.1 resolves to 127\.0\.0\.1, an address of this host/);
  for (const address of ['10.1.2.3', '172.17.0.1', '192.168.1.1', '169.254.169.254', '::1', '::ffff:127.0.0.1', 'fd00::1']) assert.equal(isInternalAddress(address), true, address);
  for (const address of ['93.184.216.34', '2606:4700::1111']) assert.equal(isInternalAddress(address), false, address);
});

test('an execution\'s proxy is offered at 3128, comes back after a restart, and is gone with its execution', async () => {
  const runDir = join(dir, 'run');
  const first = new EgressProxies(runDir, log, true);
  await first.start('exec-a', [`127.0.0.1:${upstreamPort}`]);
  await first.start('exec-b', []);
  const [endpoint] = first.endpointsOf('exec-a');
  assert.deepEqual(endpoint, { name: 'egress', port: 3128, socketPath: join(runDir, 'egress-exec-a.sock') });
  assert.deepEqual(first.endpointsOf('exec-b'), [], 'no list, no proxy');
  await first.stopAll();
  assert.deepEqual(await readdir(runDir), ['egress-exec-a.json'], 'a broker that stops keeps the list for the next process');

  const next = new EgressProxies(runDir, log, true);
  await next.resume('exec-a');
  await next.resume('exec-b');
  assert.deepEqual(next.endpointsOf('exec-b'), []);
  assert.equal((await viaProxy(endpoint!.socketPath, `http://127.0.0.1:${upstreamPort}/again`)).body, 'hello from GET /again');
  assert.equal((await viaProxy(endpoint!.socketPath, `http://127.0.0.1:${forbiddenPort}/`)).status, 403);
  await next.stop('exec-a', { forget: true });
  assert.deepEqual(next.endpointsOf('exec-a'), []);
  assert.deepEqual(await readdir(runDir), []);
});
