import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  status,
  type Client,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { register as registerXdsResolver } from '@grpc/grpc-js-xds';
import { Bus, topics } from '@paddock/bus';
import { startNatsServer } from '@paddock/testkit';
import { xdsConfig } from '../src/config.js';
import { grpcClientBootstrap } from '../src/resource/grpcBootstrap.js';
import { startXds } from '../src/xds.js';
import { eventually, log } from './support.js';

/** A one-method gRPC service that says which server answered. */
const identity = (b: Buffer) => b;
const WHO: ServiceDefinition = {
  Who: {
    path: '/paddock.test.Echo/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
type WhoClient = Client & { Who(req: Buffer, opts: { deadline: number }, cb: (err: ServiceError | null, res?: Buffer) => void): void };
const WhoClient = makeGenericClientConstructor(WHO, 'Echo') as unknown as new (target: string, creds: ReturnType<typeof credentials.createInsecure>) => WhoClient;

async function startBrokerStandIn(name: string): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new Server();
  server.addService(WHO, { Who: (_call: unknown, cb: (err: null, res: Buffer) => void) => cb(null, Buffer.from(name)) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

function who(client: WhoClient): Promise<string> {
  return new Promise((resolve, reject) => client.Who(Buffer.alloc(0), { deadline: Date.now() + 2_000 }, (err, res) => (err ? reject(err) : resolve(res?.toString() ?? ''))));
}

/** Until `count` calls in a row are answered by `name`. */
async function onlyAnswers(client: WhoClient, name: string, count: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let inARow = 0;
  let last = '';
  while (inARow < count) {
    if (Date.now() > deadline) throw new Error(`calls did not settle on ${name} within ${timeoutMs} ms (last answer: ${last})`);
    try {
      last = await who(client);
      inARow = last === name ? inARow + 1 : 0;
    } catch (err) {
      last = (err as Error).message;
      inARow = 0;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test('a real xDS client (@grpc/grpc-js-xds) follows brokers as they come and go', { timeout: 60_000 }, async () => {
  const nats = await startNatsServer();
  const bus = await Bus.connect({ url: nats.url, name: 'xds-test-brokers', log });
  const config = { ...xdsConfig({ NATS_URL: nats.url, LOG_LEVEL: 'error' }), port: 0, warmupMs: 0, brokerStaleMs: 1_500 };
  const xds = await startXds(config, log);
  const brokerA = await startBrokerStandIn('A');
  const brokerB = await startBrokerStandIn('B');
  const beating = new Map<string, string>();
  const heartbeats = setInterval(() => {
    for (const [brokerId, grpcAddress] of beating) {
      bus.publishCore(topics.brokerHeartbeat, brokerId, { brokerId, grpcAddress, relayAddress: '', executionIds: [], providers: ['docker'], running: 0, capacity: 4, atMs: Date.now() });
    }
  }, 200);
  // As every Paddock gRPC client will: the bootstrap in the environment, the resolver registered once.
  process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = grpcClientBootstrap({ serverUri: xds.address, nodeId: 'xds-integration-test' });
  registerXdsResolver();
  const clients: WhoClient[] = [];
  const channel = (target: string) => {
    const c = new WhoClient(target, credentials.createInsecure());
    clients.push(c);
    return c;
  };
  try {
    beating.set('b1', brokerA.address);
    const any = channel('xds:///paddock-broker');
    const b1 = channel('xds:///paddock-broker.b1');
    await onlyAnswers(any, 'A', 3);
    await onlyAnswers(b1, 'A', 1);

    beating.set('b2', brokerB.address);
    const b2 = channel('xds:///paddock-broker.b2');
    await onlyAnswers(b2, 'B', 3);

    // b1 stops beating (its server still answers): the control plane drops it, and the client follows.
    beating.delete('b1');
    await onlyAnswers(any, 'B', 10);
    const stream = await eventually('the client ACKed its configuration', () =>
      xds.server.status().find((s) => s.node.id === 'xds-integration-test' && s.types.every((t) => t.ackedVersion !== null && !t.pending)),
    );
    assert.equal(stream.group, 'paddock-grpc');
    assert.equal(stream.types.length, 4, 'listener, route configuration, cluster and endpoints');

    // The channel to b1 itself fails: its listener no longer exists, though A would still answer.
    const err = await eventually('b1 refused', async () => {
      const outcome = await who(b1).then(
        (answer) => answer,
        (e: ServiceError) => e,
      );
      return typeof outcome === 'string' ? undefined : outcome;
    });
    assert.equal(err.code, status.UNAVAILABLE, `expected UNAVAILABLE, got ${err.code} ${err.details}`);
  } finally {
    clearInterval(heartbeats);
    for (const c of clients) c.close();
    await xds.stop();
    await brokerA.stop();
    await brokerB.stop();
    await bus.drain();
    await nats.stop();
  }
});
