import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, createServer, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { credentials, makeGenericClientConstructor, Server, status, type ServerCredentials, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { ConfigError } from '@paddock/errors';
import {
  callerOf,
  channelCredentials,
  channelOptions,
  ensurePki,
  loadServiceTls,
  peerServiceOf,
  serverCredentials,
  tlsClientOptions,
  tlsServerOptions,
  tlsFilesFromEnv,
  type PlaneFiles,
  type PlaneService,
  type ServiceTls,
} from '../src/index.js';

let home: string;
let plane: PlaneFiles;
let stranger: PlaneFiles;

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'paddock-plane-tls-'));
  plane = await ensurePki(join(home, 'plane'), { services: ['broker', 'scheduler', 'gateway', 'edge'] });
  stranger = await ensurePki(join(home, 'stranger'), { services: ['broker', 'scheduler', 'edge'] });
});

after(async () => {
  await rm(home, { recursive: true, force: true });
});

const tlsOf = (service: PlaneService, files: PlaneFiles = plane): Promise<ServiceTls> =>
  loadServiceTls({ service, caFile: files.caFile, certFile: files.services[service]!.certFile, keyFile: files.services[service]!.keyFile });

const identity = (b: Buffer) => b;
/** One unary method that answers with the caller's service, as the server sees it. */
const WhoAmI: ServiceDefinition = {
  whoAmI: { path: '/paddock.test.Who/WhoAmI', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};
const WhoClient = makeGenericClientConstructor(WhoAmI, 'Who');

async function serve(creds: ServerCredentials): Promise<{ address: string; stop(): void }> {
  const server = new Server();
  server.addService(WhoAmI, { whoAmI: (call: Parameters<typeof callerOf>[0], done: (err: null, reply: Buffer) => void) => done(null, Buffer.from(callerOf(call) ?? 'nobody')) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

function ask(address: string, creds: ReturnType<typeof credentials.createInsecure>, options = {}): Promise<string> {
  const client = new WhoClient(address, creds, options);
  return new Promise<string>((resolve, reject) =>
    client.makeUnaryRequest('/paddock.test.Who/WhoAmI', identity, identity, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (err: ServiceError | null, reply?: Buffer) => {
      client.close();
      return err ? reject(err) : resolve(reply!.toString());
    }),
  );
}

test('a server with the plane credentials knows its caller by certificate; strangers and plain connections do not get through', async (t) => {
  const server = await serve(serverCredentials(await tlsOf('broker')));
  t.after(() => server.stop());
  assert.equal(await ask(server.address, channelCredentials(await tlsOf('scheduler'), 'broker'), channelOptions('broker')), 'scheduler');
  assert.equal(await ask(server.address, channelCredentials(await tlsOf('gateway'), 'broker'), channelOptions('broker')), 'gateway');

  await assert.rejects(ask(server.address, credentials.createInsecure()), (err: ServiceError) => err.code === status.UNAVAILABLE);
  // A client of another plane: its certificate is refused by the server, and the server's by the client.
  await assert.rejects(ask(server.address, channelCredentials(await tlsOf('scheduler', stranger), 'broker'), channelOptions('broker')), (err: ServiceError) => err.code === status.UNAVAILABLE);
  // TLS without a client certificate.
  await assert.rejects(ask(server.address, credentials.createSsl(await tlsOf('broker').then((t) => t.ca)), channelOptions('broker')), (err: ServiceError) => err.code === status.UNAVAILABLE);
});

test('a client accepts the server only as the service it expects, whatever address it dialled', async (t) => {
  const server = await serve(serverCredentials(await tlsOf('gateway')));
  t.after(() => server.stop());
  await assert.rejects(ask(server.address, channelCredentials(await tlsOf('scheduler'), 'broker'), channelOptions('broker')), (err: ServiceError) => {
    assert.equal(err.code, status.UNAVAILABLE);
    assert.match(err.details, /expected the broker of this Paddock, but the server showed the certificate of gateway/);
    return true;
  });
});

/** A plain TLS server that writes the identity of each client, as it sees it, and closes. */
async function tlsServe(tls: ServiceTls): Promise<{ port: number; stop(): void }> {
  const server = createServer(tlsServerOptions(tls), (socket: TLSSocket) => socket.end(peerServiceOf(socket) ?? 'nobody'));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, stop: () => server.close() };
}

/** What a TLS client with `options` reads from the server at `port`, or the error its connection ends with. */
function tlsRead(port: number, options: ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ ...options, host: '127.0.0.1', port });
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

test('Node TLS: a server knows its client by the identity its certificate names (the edge too); others fail the handshake', async (t) => {
  const server = await tlsServe(await tlsOf('broker'));
  t.after(() => server.stop());
  assert.equal(await tlsRead(server.port, tlsClientOptions(await tlsOf('edge'), 'broker')), 'edge');
  assert.equal(await tlsRead(server.port, tlsClientOptions(await tlsOf('gateway'), 'broker')), 'gateway');
  // No client certificate, or one of another plane: the server ends the handshake.
  await assert.rejects(tlsRead(server.port, { ca: (await tlsOf('edge')).ca, servername: 'broker' }));
  await assert.rejects(tlsRead(server.port, tlsClientOptions(await tlsOf('edge', stranger), 'broker')));
  // The client checks the server's identity, not the address it dialled.
  await assert.rejects(tlsRead(server.port, tlsClientOptions(await tlsOf('edge'), 'gateway')), /expected the gateway of this Paddock, but the server showed the certificate of broker/);
});

test('files are PADDOCK_TLS_*_FILE or PADDOCK_HOME/plane; a missing one is a ConfigError that names it and says paddock up makes it', async () => {
  assert.deepEqual(tlsFilesFromEnv({ PADDOCK_HOME: home }, 'broker'), {
    service: 'broker',
    caFile: join(home, 'plane', 'ca.crt'),
    certFile: join(home, 'plane', 'broker.crt'),
    keyFile: join(home, 'plane', 'broker.key'),
  });
  const custom = tlsFilesFromEnv({ PADDOCK_HOME: home, PADDOCK_TLS_CA_FILE: '/etc/p/ca.pem', PADDOCK_TLS_CERT_FILE: '/etc/p/b.pem', PADDOCK_TLS_KEY_FILE: '/etc/p/b.key' }, 'broker');
  assert.deepEqual([custom.caFile, custom.certFile, custom.keyFile], ['/etc/p/ca.pem', '/etc/p/b.pem', '/etc/p/b.key']);
  assert.equal((await loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: home }, 'broker'))).service, 'broker');

  await assert.rejects(loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: join(home, 'nowhere') }, 'broker')), (err: ConfigError) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.setting, 'PADDOCK_TLS_CA_FILE');
    assert.ok(err.message.includes(join(home, 'nowhere', 'plane', 'ca.crt')), err.message);
    assert.match(err.message, /`paddock up` makes .* at its first start/);
    return true;
  });
});

test('a certificate of another service, of another CA, or a key that is not its own is refused before anything listens', async () => {
  const files = { service: 'broker' as const, caFile: plane.caFile, certFile: plane.services.broker!.certFile, keyFile: plane.services.broker!.keyFile };
  await assert.rejects(loadServiceTls({ ...files, certFile: plane.services.gateway!.certFile, keyFile: plane.services.gateway!.keyFile }), /PADDOCK_TLS_CERT_FILE: .*gateway\.crt is the certificate of gateway, and this is the broker/);
  await assert.rejects(loadServiceTls({ ...files, caFile: stranger.caFile }), /PADDOCK_TLS_CERT_FILE: .*broker\.crt was not issued by the CA in .*stranger\/ca\.crt/);
  await assert.rejects(loadServiceTls({ ...files, keyFile: plane.services.gateway!.keyFile }), /PADDOCK_TLS_KEY_FILE: .*gateway\.key is not the key of the certificate in .*broker\.crt/);
  const copy = join(home, 'not-a-cert.pem');
  await copyFile(plane.services.broker!.keyFile, copy);
  await assert.rejects(loadServiceTls({ ...files, certFile: copy }), /PADDOCK_TLS_CERT_FILE: .*not-a-cert\.pem is not a certificate in PEM/);
  await assert.rejects(loadServiceTls(files, Date.now() + 400 * 24 * 60 * 60 * 1000), /broker\.crt expired on .*`paddock up` reissues/);
});
