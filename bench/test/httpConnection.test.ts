// The client both ingress figures share, against a real HTTP server on loopback.
import assert from 'node:assert/strict';
import { createServer, type RequestListener, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import { HttpConnection, HttpConnectionError } from '../src/httpConnection.js';

async function serve(handler: RequestListener): Promise<{ server: Server; open: () => Promise<Duplex>; sockets: () => number }> {
  const server = createServer(handler);
  let sockets = 0;
  server.on('connection', () => (sockets += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const open = () =>
    new Promise<Duplex>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
  return { server, open, sockets: () => sockets };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

test('GETs go one after another over one kept-alive connection, with the headers given and the whole body', async () => {
  const big = Buffer.alloc(3_000_000, 'ab');
  const seen: string[] = [];
  const { server, open, sockets } = await serve((req, res) => {
    seen.push(`${req.url} ${req.headers.host} ${req.headers['x-who']}`);
    const body = req.url === '/big' ? big : Buffer.from('hello');
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const client = new HttpConnection(open, { Host: 'example.localhost', 'X-Who': 'bench' }, 'test');
  try {
    const small = await client.get('/small', true);
    assert.equal(small.status, 200);
    assert.equal(small.body?.toString(), 'hello');
    assert.ok(small.ms > 0);
    const large = await client.get('/big');
    assert.equal(large.bodyBytes, big.length);
    assert.equal(large.body, undefined, 'a body not asked for is only counted');
    assert.equal((await client.get('/small', true)).body?.toString(), 'hello');
    assert.deepEqual(seen, ['/small example.localhost bench', '/big example.localhost bench', '/small example.localhost bench']);
    assert.equal(client.opened, 1);
    assert.equal(sockets(), 1);
  } finally {
    client.close();
    await close(server);
  }
});

test('a connection the server closed while idle is opened again for the next GET', async () => {
  const { server, open, sockets } = await serve((req, res) => {
    res.writeHead(200, { 'content-length': 2 });
    // As a server's keep-alive timeout does, a while after the answer.
    res.end('ok', () => setTimeout(() => req.socket.end(), 20));
  });
  const client = new HttpConnection(open, { Host: 'x' }, 'test');
  try {
    await client.get('/');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await client.get('/', true)).body?.toString(), 'ok');
    assert.equal(client.opened, 2);
    assert.equal(sockets(), 2);
  } finally {
    client.close();
    await close(server);
  }
});

test('a body without a Content-Length, or Connection: close, is refused with what was wrong', async () => {
  const { server, open } = await serve((req, res) => {
    if (req.url === '/chunked') {
      res.write('part');
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': 2, connection: 'close' });
    res.end('ok');
  });
  const client = new HttpConnection(open, { Host: 'x' }, 'test');
  try {
    await assert.rejects(client.get('/chunked'), (err: Error) => err instanceof HttpConnectionError && /no Content-Length \(transfer-encoding: chunked\)/.test(err.message));
    await assert.rejects(client.get('/close'), /test: the response says Connection: close/);
  } finally {
    client.close();
    await close(server);
  }
});

test('a server that goes away in the middle of a body fails that GET', async () => {
  const { server, open } = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': 1000 });
    res.write('only part of it');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const client = new HttpConnection(open, { Host: 'x' }, 'test');
  try {
    await assert.rejects(client.get('/'), /test: the (far end closed the connection|connection closed) in the middle of a response/);
  } finally {
    client.close();
    await close(server);
  }
});
