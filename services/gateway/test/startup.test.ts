// The gateway started before its database: it listens at once and says what it waits for, then serves on
// the same port; its /healthz is 200 only once a scheduler and a broker beat.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { Bus, topics } from '@paddock/bus';
import type { ServiceHealth, Startup } from '@paddock/service';
import { freePort } from '@paddock/testkit';
import { startGateway } from '../src/gateway.js';
import { startTestStack } from './testStack.js';

/** A service's startup as runService gives it: each wait shows in the health while it lasts. */
function startupOf(): Startup {
  const abort = new AbortController();
  let health: ServiceHealth = { state: 'starting', sinceMs: Date.now() };
  return {
    signal: abort.signal,
    health: () => health,
    async waitFor(dependency, wait) {
      health = { state: 'waiting', dependency, sinceMs: Date.now() };
      try {
        return await wait(abort.signal);
      } finally {
        health = { state: 'starting', sinceMs: Date.now() };
      }
    },
  };
}

/** A TCP port that leads to `target` once opened: the database "coming up" at an address the gateway already tries. */
function forwarder(port: number, target: { host: string; port: number }): Promise<Server & { sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(Object.assign(server, { sockets }))));
}

async function get(url: string): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('started before PostgreSQL, the gateway listens at once, /healthz says it waits for PostgreSQL, and then it serves on the same port', async (t) => {
  const stack = await startTestStack();
  // Stopped in this order: the gateway, then what it connects to.
  const cleanups: (() => Promise<unknown>)[] = [() => stack.stop()];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const real = new URL(stack.databaseUrl);
  const [dbPort, apiPort] = await Promise.all([freePort(), freePort()]);
  const unreachable = new URL(stack.databaseUrl);
  unreachable.port = String(dbPort);
  const startup = startupOf();
  const starting = startGateway(stack.config({ DATABASE_URL: unreachable.toString(), PADDOCK_PORT: String(apiPort) }), stack.log, { startup });
  cleanups.push(async () => {
    await (await starting.catch(() => undefined))?.stop();
  });
  const url = `http://127.0.0.1:${apiPort}`;

  const waiting = await until('/healthz to answer while PostgreSQL is down', async () => {
    const r = await get(`${url}/healthz`);
    return r.body['waitingFor'] === 'PostgreSQL' ? r : undefined;
  });
  assert.equal(waiting.status, 503);
  assert.equal(waiting.body['status'], 'unavailable');
  assert.match(String(waiting.body['message']), /^the gateway is waiting for PostgreSQL \(\d+ s\)$/);
  const api = await get(`${url}/api/v1/executions`);
  assert.equal(api.status, 503, 'the API answers, and says it is not ready');
  assert.equal(api.headers.get('retry-after'), '2');
  assert.deepEqual(Object.keys(api.body), ['error']);
  assert.match(String((api.body['error'] as { message: string }).message), /not ready yet \(waiting for PostgreSQL/);

  const db = await forwarder(dbPort, { host: real.hostname, port: Number(real.port) });
  // Closed after the gateway stops (cleanups run last first), so that its pool ends while PostgreSQL answers.
  cleanups.splice(1, 0, () =>
    new Promise<void>((resolve) => {
      for (const s of db.sockets) s.destroy();
      db.close(() => resolve());
    }),
  );
  const started = await starting;
  assert.equal(started.url, url, 'the app serves on the port that answered while waiting');

  const unauthenticated = await fetch(`${url}/api/v1/executions`);
  assert.equal(unauthenticated.status, 401, 'requests now reach the app');
  const ws = new WebSocket(`ws://127.0.0.1:${apiPort}/terminal/nope`);
  const [, refused] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
  // Refused before it opened: ending it now reports an error, which is expected.
  ws.on('error', () => {});
  ws.terminate();
  assert.equal(refused.statusCode, 401, 'WebSocket upgrades reach the app too (its terminal route asks for a ticket)');
  const missing = await get(`${url}/healthz`);
  assert.equal(missing.status, 503);
  assert.equal(missing.body['checks'] && (missing.body['checks'] as Record<string, string>)['database'], 'ok');
  assert.match(String(missing.body['message']), /waiting for scheduler \(no heartbeat .*is a scheduler running\?\), broker \(no heartbeat/, 'it names the services it misses');

  const peers = await Bus.connect({ url: stack.nats.url, name: 'startup-test', log: stack.log });
  cleanups.push(() => peers.drain());
  const beat = () => {
    peers.publishCore(topics.serviceHeartbeat, 'scheduler', { service: 'scheduler', instanceId: 'test', atMs: Date.now() });
    peers.publishCore(topics.brokerHeartbeat, 'broker-test', {
      brokerId: 'broker-test',
      grpcAddress: '127.0.0.1:1', relayAddress: '',
      providers: ['docker'],
      running: 0,
      executionIds: [],
      capacity: 1,
      atMs: Date.now(),
    });
  };
  const healthy = await until('/healthz 200 once a scheduler and a broker beat', async () => {
    beat();
    const r = await get(`${url}/healthz`);
    return r.status === 200 ? r : undefined;
  });
  assert.deepEqual(healthy.body, { status: 'ok', message: 'ok', checks: { database: 'ok', nats: 'ok', scheduler: 'ok', broker: 'ok' } });
});

test('while PostgreSQL is away after the start, requests answer 503 with Retry-After, and work again once it is back', async (t) => {
  const stack = await startTestStack();
  const cleanups: (() => Promise<unknown>)[] = [() => stack.stop()];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const real = new URL(stack.databaseUrl);
  const [dbPort, apiPort] = await Promise.all([freePort(), freePort()]);
  const viaForwarder = new URL(stack.databaseUrl);
  viaForwarder.port = String(dbPort);
  const target = { host: real.hostname, port: Number(real.port) };
  let db = await forwarder(dbPort, target);
  const closeDb = () =>
    new Promise<void>((resolve) => {
      for (const s of db.sockets) s.destroy();
      db.close(() => resolve());
    });
  cleanups.push(() => closeDb());
  const gateway = await startGateway(stack.config({ DATABASE_URL: viaForwarder.toString(), PADDOCK_PORT: String(apiPort) }), stack.log, { startup: startupOf() });
  cleanups.push(() => gateway.stop());
  const token = (await readFile(join(stack.home, 'admin-token'), 'utf8')).trim();
  const list = () => fetch(`http://127.0.0.1:${apiPort}/api/v1/executions`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) });
  assert.equal((await list()).status, 200);

  await closeDb();
  const away = await list();
  assert.equal(away.status, 503, await away.clone().text());
  assert.equal(away.headers.get('retry-after'), '2');
  assert.deepEqual(await away.json(), { error: { code: 'unavailable', message: 'the database is not reachable right now; try again in a few seconds' } });

  db = await forwarder(dbPort, target);
  await until('the API to answer again', async () => ((await list()).status === 200 ? true : undefined));
});
