// The broker's gRPC answers only the plane: mutual TLS with certificates of the plane's CA, and each method
// for the services that need it. Every call here goes over a real TLS connection on loopback. And the
// broker opens specs with the plane's spec key only, never with the key of users' stored secrets.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { credentials, Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { ConfigError } from '@paddock/errors';
import { channelCredentials, channelOptions, ensurePki, loadServiceTls, type PlaneFiles } from '@paddock/plane';
import { BrokerClient, type ExecOutput, type ExecutionSpec, type LaunchReply } from '@paddock/proto';
import { SecretBox, SpecKey, sealSpec } from '@paddock/secrets';
import { startBroker, type StartedBroker } from '../src/broker.js';
import { brokerConfig } from '../src/config.js';
import { brokerClientAs } from './support/brokerClient.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

let t: TestBroker;
let broker: StartedBroker;
/** Another Paddock's plane: its own CA, whose certificates name the same services. */
let stranger: PlaneFiles;
const clients: BrokerClient[] = [];

before(async () => {
  t = await setUpTestBroker('mtls');
  broker = await t.start();
  stranger = await ensurePki(join(t.services.dir, 'stranger-plane'), { services: ['scheduler', 'gateway'] });
});
after(async () => {
  for (const c of clients) c.close();
  await t?.stop();
});

function client(creds: ChannelCredentials, options = channelOptions('broker')): BrokerClient {
  const c = new BrokerClient(broker.grpcAddress, creds, options);
  clients.push(c);
  return c;
}

async function as(service: 'scheduler' | 'gateway' | 'xds' | 'portdetect'): Promise<BrokerClient> {
  const c = await brokerClientAs(service, broker.grpcAddress, t.env);
  clients.push(c);
  return c;
}

const deadline = () => ({ deadline: Date.now() + 10_000 });

function launch(c: BrokerClient, executionId: string, spec: ExecutionSpec): Promise<LaunchReply> {
  return new Promise((resolve, reject) =>
    c.launch({ executionId, ownerId: 'ivy', spec }, new Metadata(), { deadline: Date.now() + 60_000 }, (err, reply) => (err ? reject(err) : resolve(reply))),
  );
}

function cancel(c: BrokerClient, executionId: string): Promise<boolean> {
  return new Promise((resolve, reject) => c.cancel({ executionId, graceMs: 0 }, new Metadata(), deadline(), (err, reply) => (err ? reject(err) : resolve(reply.found))));
}

function access(c: BrokerClient, executionId: string): Promise<unknown> {
  return new Promise((resolve, reject) => c.access({ executionId }, new Metadata(), deadline(), (err, reply) => (err ? reject(err) : resolve(reply))));
}

async function exec(c: BrokerClient, executionId: string, cmd: string[]): Promise<{ stdout: string; exitCode: number | undefined }> {
  let stdout = '';
  let exitCode: number | undefined;
  for await (const out of c.exec({ executionId, cmd, stdin: Buffer.alloc(0) }, new Metadata(), deadline()) as AsyncIterable<ExecOutput>) {
    stdout += Buffer.from(out.data).toString();
    if (out.exitCode !== undefined) exitCode = out.exitCode;
  }
  return { stdout, exitCode };
}

/** The status a Relay call ends with once its first frame is sent. */
function relayStatus(c: BrokerClient, executionId: string): Promise<ServiceError> {
  return new Promise((resolve) => {
    const call = c.relay(new Metadata(), deadline());
    call.on('data', () => {});
    call.on('error', (err: ServiceError) => resolve(err));
    call.write({ open: { executionId, port: 22 }, data: Buffer.alloc(0), eof: false });
  });
}

function denied(caller: string, method: string): (err: ServiceError) => boolean {
  return (err) => {
    assert.equal(err.code, status.PERMISSION_DENIED, `${err.code}: ${err.details}`);
    assert.ok(err.details.includes(caller), err.details);
    assert.ok(err.details.includes(`/paddock.v1.Broker/${method}`), err.details);
    return true;
  };
}

test('a client without TLS is refused before any call is made', async () => {
  await assert.rejects(cancel(client(credentials.createInsecure(), {}), randomUUID()), (err: ServiceError) => {
    assert.equal(err.code, status.UNAVAILABLE, err.details);
    return true;
  });
});

test("a client that trusts the broker but shows no certificate, or one of another plane's CA, fails the handshake", async () => {
  const ca = await readFile(t.plane.caFile);
  const noCertificate = client(credentials.createSsl(ca), channelOptions('broker'));
  await assert.rejects(cancel(noCertificate, randomUUID()), (err: ServiceError) => err.code === status.UNAVAILABLE);

  // The stranger's scheduler certificate and key, with this plane's CA to accept the broker: only the
  // broker's check of the client certificate can refuse it. The same client with this plane's scheduler
  // certificate gets through, so it is the certificate that is refused.
  const withCertificateOf = async (files: PlaneFiles) =>
    client(
      credentials.createSsl(ca, await readFile(files.services.scheduler!.keyFile), await readFile(files.services.scheduler!.certFile), {
        checkServerIdentity: () => undefined,
      }),
    );
  await assert.rejects(cancel(await withCertificateOf(stranger), randomUUID()), (err: ServiceError) => {
    assert.equal(err.code, status.UNAVAILABLE, err.details);
    return true;
  });
  assert.equal(await cancel(await withCertificateOf(t.plane), randomUUID()), false);
});

test('the broker must be the broker: a client refuses a server whose certificate names another service', async () => {
  // The same plane's CA, but the gateway's certificate on the server side is not what a client of the broker expects.
  const asScheduler = await loadServiceTls({
    service: 'scheduler',
    caFile: t.plane.caFile,
    certFile: t.plane.services.scheduler!.certFile,
    keyFile: t.plane.services.scheduler!.keyFile,
  });
  const wrongExpectation = client(channelCredentials(asScheduler, 'gateway'), channelOptions('gateway'));
  await assert.rejects(cancel(wrongExpectation, randomUUID()), (err: ServiceError) => {
    assert.equal(err.code, status.UNAVAILABLE);
    assert.match(err.details, /expected the gateway of this Paddock, but the server showed the certificate of broker/);
    return true;
  });
});

test('a service of the plane that a method is not for gets PERMISSION_DENIED naming it and the method, whatever the kind of call', async () => {
  const gateway = await as('gateway');
  const scheduler = await as('scheduler');
  const xds = await as('xds');
  const id = randomUUID();
  await assert.rejects(cancel(gateway, id), denied('gateway', 'Cancel'));
  await assert.rejects(launch(gateway, id, shellSpec('true')), denied('gateway', 'Launch'));
  await assert.rejects(access(scheduler, id), denied('scheduler', 'Access'));
  await assert.rejects(exec(scheduler, id, ['true']), denied('scheduler', 'Exec'));
  denied('scheduler', 'Relay')(await relayStatus(scheduler, id));
  await assert.rejects(cancel(xds, id), denied('xds', 'Cancel'));
  assert.deepEqual(broker.instances.executionIds, [], 'nothing was launched');
});

test('the scheduler launches and cancels, the gateway reaches into the instance: each with its own certificate', async () => {
  const scheduler = await as('scheduler');
  const gateway = await as('gateway');
  const id = randomUUID();
  await launch(scheduler, id, shellSpec('sleep 300', { timeoutMs: 300_000 }));
  assert.deepEqual(await exec(gateway, id, ['sh', '-c', 'echo from-the-gateway']), { stdout: 'from-the-gateway\n', exitCode: 0 });
  // A shell job has no sshd: the gateway is let through, and the broker says so.
  await assert.rejects(access(gateway, id), (err: ServiceError) => err.code === status.FAILED_PRECONDITION);
  assert.equal((await relayStatus(gateway, randomUUID())).code, status.NOT_FOUND, 'the gateway may relay; this execution is not here');
  assert.equal(await cancel(scheduler, id), true);
});

test('a broker whose certificate is missing does not start, and says which file and who makes it', async () => {
  const missing = join(t.services.dir, 'nowhere', 'broker.crt');
  const config = brokerConfig({ ...t.env, PADDOCK_TLS_CERT_FILE: missing });
  await assert.rejects(startBroker(config, t.log), (err: Error) => {
    assert.ok(err instanceof ConfigError, err.message);
    assert.ok(err.message.startsWith(`PADDOCK_TLS_CERT_FILE: ${missing} does not exist`), err.message);
    assert.match(err.message, /`paddock up` makes/);
    return true;
  });
});

test("a spec sealed with the users' secrets key does not open at the broker, which says which key file it opens with; one sealed with the spec key does", async () => {
  const scheduler = await as('scheduler');
  const gateway = await as('gateway');
  // The key the gateway keeps users' secrets under, in the same PADDOCK_HOME as the broker's spec key.
  const secretKeyFile = join(t.services.dir, 'secret-key');
  await SecretBox.fromFile(secretKeyFile);
  const secretsKey = SpecKey.withKey(Buffer.from((await readFile(secretKeyFile, 'utf8')).trim(), 'base64'));
  const spec = shellSpec('sleep 300', { timeoutMs: 300_000, env: { DEPLOY_TOKEN: 'tok-123' } });

  const wrong = randomUUID();
  await assert.rejects(launch(scheduler, wrong, sealSpec(spec, secretsKey, wrong)), (err: ServiceError) => {
    assert.equal(err.code, status.FAILED_PRECONDITION, err.details);
    assert.match(err.details, /do not open with this broker's spec key/);
    assert.ok(err.details.includes(`${join(t.services.dir, 'plane', 'spec-key')}; it must be the gateway's PADDOCK_SPEC_KEY_FILE`), err.details);
    return true;
  });

  const right = randomUUID();
  await launch(scheduler, right, sealSpec(spec, await SpecKey.existing(t.config.specKeyFile), right));
  assert.deepEqual(await exec(gateway, right, ['sh', '-c', 'echo "$DEPLOY_TOKEN"']), { stdout: 'tok-123\n', exitCode: 0 });
  assert.equal(await cancel(scheduler, right), true);
});
