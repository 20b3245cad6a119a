// The gateway's BrokerDirectory finds brokers through a real services/xds, run in this process, as a real
// @grpc/grpc-js-xds client: `xds:///paddock-broker.<id>`, over mutual TLS with the gateway's certificate of
// a plane made here, to broker stand-ins whose heartbeats go over a real nats-server. Access, Exec and
// Relay reach the broker; the channel follows it to a new address; a broker the control plane dropped while
// it was silent is refused at once, then reached as soon as it beats again; while the control plane is away,
// a broker already reached stays reachable, and one never reached is refused in bounded time, then reached.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Duplex } from 'node:stream';
import { register as registerXdsResolver } from '@grpc/grpc-js-xds';
import { Bus, topics } from '@paddock/bus';
import { UnavailableError } from '@paddock/errors';
import { ensurePki, loadServiceTls, planeDir, tlsFilesFromEnv, type ServiceTls } from '@paddock/plane';
import { createLogger } from '@paddock/telemetry';
import { freePort, startNatsServer, type NatsServer } from '@paddock/testkit';
import { grpcClientBootstrap, startXds, xdsConfig, type StartedXds } from '@paddock/xds';
import { gatewayConfig } from '../src/config.js';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { startBrokerStandIn, type BrokerStandIn } from './brokerStandIn.js';

const log = createLogger('gateway-xds-test', process.env['LOG_LEVEL'] ?? 'silent');
const NODE_ID = 'gateway-xds-test';
const CONNECT_WITHIN_MS = 3_000;

let dir: string;
let nats: NatsServer;
let bus: Bus;
let brokerTls: ServiceTls;
let gatewayTls: ServiceTls;
/** One control plane address for the whole file: grpc-js-xds reads its bootstrap once per process. */
let xdsPort: number;
let xds: StartedXds | undefined;
let directory: BrokerDirectory;
const beating = new Map<string, () => string>();
let heartbeats: NodeJS.Timeout;
const standIns: BrokerStandIn[] = [];

/** services/xds on xdsPort, as `paddock up` runs it (its first configuration waits for the brokers' heartbeats). */
async function startControlPlane(): Promise<StartedXds> {
  xds = await startXds(xdsConfig({ NATS_URL: nats.url, PADDOCK_XDS_PORT: String(xdsPort), PADDOCK_XDS_BROKER_STALE_MS: '2000' }), log);
  return xds;
}

async function standIn(name: string): Promise<BrokerStandIn> {
  const s = await startBrokerStandIn(brokerTls, name);
  standIns.push(s);
  return s;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(100);
  }
}

/** What a command run through the broker printed. */
async function exec(brokerId: string, executionId: string): Promise<string> {
  let out = '';
  for await (const chunk of directory.exec(brokerId, { executionId, cmd: ['whoami'], stdin: Buffer.alloc(0) }, new AbortController().signal)) out += Buffer.from(chunk.data).toString();
  return out;
}

/** The bytes that come back through a relay after `text` is sent. */
async function echo(relay: Duplex, text: string): Promise<string> {
  const back = new Promise<string>((resolve, reject) => {
    relay.once('data', (d: Buffer) => resolve(d.toString()));
    relay.once('error', reject);
  });
  relay.write(text);
  return back;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-gateway-xds-'));
  await ensurePki(planeDir(dir), { services: ['gateway', 'broker'] });
  [brokerTls, gatewayTls] = await Promise.all([loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: dir }, 'broker')), loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: dir }, 'gateway'))]);
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'gateway-xds-test', log });
  xdsPort = await freePort();
  // What the gateway's main.ts does when PADDOCK_XDS_URL is set.
  process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = grpcClientBootstrap({ serverUri: `127.0.0.1:${xdsPort}`, nodeId: NODE_ID });
  registerXdsResolver();
  heartbeats = setInterval(() => {
    for (const [brokerId, address] of beating) {
      bus.publishCore(topics.brokerHeartbeat, brokerId, { brokerId, grpcAddress: address(), relayAddress: '', executionIds: [], providers: ['docker'], running: 0, capacity: 4, atMs: Date.now() });
    }
  }, 200);
  directory = new BrokerDirectory(bus, gatewayTls, { viaXds: true, connectWithinMs: CONNECT_WITHIN_MS });
  directory.start();
  await startControlPlane();
});

after(async () => {
  clearInterval(heartbeats);
  await directory?.stop();
  await xds?.stop();
  for (const s of standIns) await s.stop();
  await bus?.drain();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('with PADDOCK_XDS_URL the gateway finds brokers through xDS unless PADDOCK_BROKERS_VIA_XDS is false; otherwise it dials their heartbeat addresses', () => {
  const home = { PADDOCK_HOME: dir };
  assert.equal(gatewayConfig({ ...home, PADDOCK_XDS_URL: 'grpc://127.0.0.1:18001' }).brokerXdsAddress, '127.0.0.1:18001', 'on by default');
  assert.equal(gatewayConfig({ ...home, PADDOCK_XDS_URL: 'grpc://127.0.0.1:18001', PADDOCK_BROKERS_VIA_XDS: 'true' }).brokerXdsAddress, '127.0.0.1:18001');
  assert.equal(gatewayConfig({ ...home, PADDOCK_XDS_URL: 'grpc://127.0.0.1:18001', PADDOCK_BROKERS_VIA_XDS: 'false' }).brokerXdsAddress, undefined, 'turned off');
  assert.equal(gatewayConfig(home).brokerXdsAddress, undefined, 'no control plane named');
  assert.equal(gatewayConfig({ ...home, PADDOCK_BROKERS_VIA_XDS: 'true' }).brokerXdsAddress, undefined);
  assert.equal(gatewayConfig(home).ingress.xdsAddress, '127.0.0.1:18000', 'the ingress keeps its default');
});

test('access, exec and relay reach a broker as xds:///paddock-broker.<id>, over mTLS, and follow it to a new address', { timeout: 60_000 }, async () => {
  const first = await standIn('first');
  let at = first.address;
  beating.set('b1', () => at);

  const access = await eventually('access through the control plane', () => directory.access('b1', 'e1'));
  assert.equal(access.username, 'first');
  assert.equal(await exec('b1', 'e1'), 'first ran whoami');
  const relay = await directory.relay('b1', 'e1', 22);
  assert.equal(await echo(relay, 'ping'), 'ping');
  relay.destroy();
  // The endpoints xDS gave were dialled with the channel's credentials: the broker saw the gateway's certificate.
  assert.deepEqual(
    first.calls.map((c) => [c.method, c.caller]),
    [
      ['access', 'gateway'],
      ['exec', 'gateway'],
      ['relay', 'gateway'],
    ],
  );

  // The broker restarts at another port: its heartbeat says so, the control plane tells the channel.
  const second = await standIn('second');
  await first.stop();
  at = second.address;
  await eventually('exec answered at the new address', async () => ((await exec('b1', 'e1')) === 'second ran whoami' ? true : undefined));
  const moved = await directory.relay('b1', 'e1', 22);
  assert.equal(await echo(moved, 'pong'), 'pong');
  moved.destroy();
  assert.equal(second.calls.at(-1)?.caller, 'gateway');
});

test('a broker the control plane dropped while it was silent is refused at once, and reached again as soon as it beats again', { timeout: 60_000 }, async () => {
  // It answers all along: only its heartbeats stop, as those of a broker that was frozen and resumed.
  const silent = await standIn('silent');
  beating.set('b4', () => silent.address);
  await eventually('exec on b4', async () => ((await exec('b4', 'e4')) === 'silent ran whoami' ? true : undefined));

  // Silent for longer than the control plane keeps a broker (2 s here), not as long as the directory does (10 s).
  beating.delete('b4');
  await eventually('b4 dropped by the control plane', async () => (xds?.state.state().brokers.has('b4') ? undefined : true));
  const refused = await eventually('exec on b4 refused', async () => {
    const startedMs = Date.now();
    try {
      await exec('b4', 'e4');
      return undefined;
    } catch (err) {
      return { err, tookMs: Date.now() - startedMs };
    }
  });
  assert.ok(refused.err instanceof UnavailableError, `expected UnavailableError, got ${String(refused.err)}`);
  assert.ok(refused.tookMs < 1_000, `a broker the control plane dropped is refused at once, not waited for (${refused.tookMs} ms)`);
  const callsBefore = silent.calls.length;

  // Its heartbeats come back, with the same listener, cluster and address as before it went silent.
  beating.set('b4', () => silent.address);
  await eventually('exec on b4 once it beats again', async () => ((await exec('b4', 'e4')) === 'silent ran whoami' ? true : undefined), 10_000);
  const relay = await directory.relay('b4', 'e4', 22);
  assert.equal(await echo(relay, 'back'), 'back');
  relay.destroy();
  assert.deepEqual(
    silent.calls.slice(callsBefore).map((c) => [c.method, c.caller]),
    [
      ['exec', 'gateway'],
      ['relay', 'gateway'],
    ],
  );
});

test('while the control plane restarts, a broker reached before stays reachable, and one never reached waits for it', { timeout: 60_000 }, async () => {
  const kept = await standIn('kept');
  beating.set('b2', () => kept.address);
  await eventually('exec on b2', async () => ((await exec('b2', 'e2')) === 'kept ran whoami' ? true : undefined));

  await xds?.stop();
  xds = undefined;
  // The channel keeps the last configuration it had: a terminal or an exec still reaches the broker.
  assert.equal(await exec('b2', 'e2'), 'kept ran whoami');
  const relay = await directory.relay('b2', 'e2', 22);
  assert.equal(await echo(relay, 'still here'), 'still here');
  relay.destroy();

  // A broker heard (its heartbeat) but never reached has no address without the control plane: refused in
  // bounded time with a reason, not left hanging.
  const fresh = await standIn('fresh');
  beating.set('b3', () => fresh.address);
  const startedMs = Date.now();
  // (Heard within a heartbeat, 200 ms: the directory waits that long for a broker it has not heard yet.)
  const refused = await exec('b3', 'e3').then(
    () => assert.fail('exec on b3 answered without a control plane'),
    (err: unknown) => err,
  );
  assert.ok(refused instanceof UnavailableError, `expected UnavailableError, got ${String(refused)}`);
  assert.match(refused.message, /broker b3 could not be reached within 3000 ms: xds:\/\/\/paddock-broker\.b3 .*services\/xds/);
  assert.ok(Date.now() - startedMs < CONNECT_WITHIN_MS + 2_000, 'refused within the connect bound');

  const restarted = await startControlPlane();
  await eventually('exec on b3 once the control plane is back', async () => ((await exec('b3', 'e3')) === 'fresh ran whoami' ? true : undefined));
  // The client is back on the control plane before the file ends, or its ADS call would outlive the test.
  await eventually('the client back on the restarted control plane', async () =>
    restarted.server.status().find((s) => s.node.id === NODE_ID && s.types.length === 4 && s.types.every((t) => t.ackedVersion !== null)),
  );
});
