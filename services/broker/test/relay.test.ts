// The relay, end to end through the broker: the Relay RPC into a port of an instance that has no network,
// its errors, its flow control, and Paddock's own endpoints offered inside an instance, supervised, set up
// again by a broker that adopts the instance, and gone with it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { createServer, type Server as HttpServer } from 'node:http';
import { join } from 'node:path';
import { Metadata, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { BlobStore } from '@paddock/blobs';
import { createPool, migrate } from '@paddock/db';
import { loadServiceTls } from '@paddock/plane';
import { ExitCause, OutputStream, type BrokerClient, type RelayFrame } from '@paddock/proto';
import { SpecKey } from '@paddock/secrets';
import { MIGRATIONS_DIR } from '../src/broker.js';
import { InstanceStore } from '../src/instanceStore.js';
import { InstanceManager } from '../src/lifecycle/instanceManager.js';
import { DockerProvider } from '../src/providers/docker/dockerProvider.js';
import type { RelayEndpoint } from '../src/relay/endpoints.js';
import { startGrpcServer } from '../src/server.js';
import { brokerClientAs } from './support/brokerClient.js';
import { containersOf } from './support/containers.js';
import { exitedOf, outputOf, textOf } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

const MiB = 1024 * 1024;
const ENDPOINT_PORT = 7801;

let t: TestBroker;
let pool: ReturnType<typeof createPool>;
let provider: DockerProvider;
let endpointServer: HttpServer;
let endpoint: RelayEndpoint;
/** Said by the endpoint on the host, so that a job can only print it by reaching it. */
const endpointToken = randomBytes(8).toString('hex');

/** A broker's lifecycle and gRPC server on the test's database and NATS, offering `endpoint` inside instances. */
async function startManager(): Promise<{ instances: InstanceManager; client: BrokerClient; stop(): Promise<void> }> {
  const store = new InstanceStore(pool);
  const specKey = await SpecKey.existing(t.config.specKeyFile);
  const instances = new InstanceManager(provider, t.bus, store, new BlobStore(t.config.blobsDir), t.config, t.log, specKey, undefined, [endpoint]);
  await instances.reconcile();
  const grpc = await startGrpcServer(instances, { host: '127.0.0.1', port: 0, log: t.log, tls: await loadServiceTls(t.config.tls) });
  const client = await brokerClientAs('gateway', grpc.address, t.env);
  return {
    instances,
    client,
    stop: async () => {
      client.close();
      await grpc.stop();
      await instances.stop();
    },
  };
}

let manager: Awaited<ReturnType<typeof startManager>>;

before(async () => {
  t = await setUpTestBroker('relay');
  pool = createPool(t.config.databaseUrl!, { name: 'relay-test' });
  await migrate(pool, 'broker', MIGRATIONS_DIR, { log: t.log });
  provider = new DockerProvider(t.docker, { imagesDir: t.config.imagesDir, workspaceMode: 'bind', workspacesDir: t.config.workspacesDir });
  const socketPath = join(t.services.dir, 'endpoint.sock');
  endpointServer = createServer((req, res) => res.end(`endpoint ${endpointToken} saw ${req.method} ${req.url}\n`));
  await new Promise<void>((resolve) => endpointServer.listen(socketPath, resolve));
  endpoint = { name: 'test-endpoint', port: ENDPOINT_PORT, socketPath };
  manager = await startManager();
});

after(async () => {
  await manager?.stop();
  await new Promise((resolve) => endpointServer?.close(resolve));
  await pool?.end();
  await t?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A job with no network serving HTTP on its own loopback only. */
const LOOPBACK_SERVER = `python3 -c '
import http.server as h
class H(h.BaseHTTPRequestHandler):
  def do_GET(self):
    self.send_response(200); self.end_headers(); self.wfile.write(b"hello from 127.0.0.1 inside")
  def log_message(self, *a): pass
h.HTTPServer(("127.0.0.1", 8123), H).serve_forever()'`;

async function launch(command: string): Promise<string> {
  const executionId = randomUUID();
  await manager.instances.launch({ executionId, ownerId: 'alice', spec: shellSpec(command) });
  return executionId;
}

interface RelayResult {
  readonly data: Buffer;
  readonly eof: boolean;
  readonly error: ServiceError | null;
}

/** One Relay call: the first frame opens `port` of the execution with `send`, then half-closes; reads to the end. */
function relayOnce(executionId: string, port: number, send: string | Buffer = Buffer.alloc(0)): Promise<RelayResult> {
  return new Promise((resolve) => {
    const call = manager.client.relay(new Metadata(), { deadline: Date.now() + 20_000 });
    const chunks: Buffer[] = [];
    let eof = false;
    let frames = 0;
    call.on('data', (f: RelayFrame) => {
      // The broker's first frame is empty: it says that the connection inside is open.
      if (frames++ === 0) assert.equal(f.data.length, 0);
      chunks.push(Buffer.from(f.data));
      if (f.eof) eof = true;
    });
    call.on('error', (error: ServiceError) => resolve({ data: Buffer.concat(chunks), eof, error }));
    call.on('end', () => resolve({ data: Buffer.concat(chunks), eof, error: null }));
    call.write({ open: { executionId, port }, data: Buffer.from(send), eof: false });
    call.end();
  });
}

/** Relays an HTTP/1.0 GET until the server inside answers (it takes a moment to start). */
async function getThroughRelay(executionId: string, port: number): Promise<RelayResult> {
  let last: RelayResult | undefined;
  for (let attempt = 0; attempt < 40; attempt++) {
    last = await relayOnce(executionId, port, 'GET / HTTP/1.0\r\nHost: x\r\n\r\n');
    if (last.error?.code !== status.FAILED_PRECONDITION) return last;
    await sleep(250);
  }
  return last!;
}

/** Pids of this host's processes whose command line contains every one of `words`. */
async function processesWith(...words: string[]): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (words.every((w) => args.some((a) => a.includes(w)))) found.push(Number(entry));
  }
  return found;
}

async function containerPid(executionId: string): Promise<number> {
  const [c] = await containersOf(t.docker, t.brokerId, executionId);
  const info = await t.docker.getContainer(c!.Id).inspect();
  return info.State.Pid;
}

async function execIn(executionId: string, cmd: string[]): Promise<{ stdout: string; exitCode: number | undefined }> {
  let stdout = '';
  let exitCode: number | undefined;
  for await (const out of manager.instances.exec({ executionId, cmd, stdin: Buffer.alloc(0) })) {
    if (out.stream === OutputStream.OUTPUT_STREAM_STDOUT) stdout += Buffer.from(out.data).toString('utf8');
    if (out.exitCode !== undefined) exitCode = out.exitCode;
  }
  return { stdout, exitCode };
}

/** curl inside the instance to the endpoint's loopback address, a few times while the relay comes up. */
async function curlEndpoint(executionId: string): Promise<string> {
  const r = await execIn(executionId, ['sh', '-c', `for i in $(seq 30); do curl -sf http://127.0.0.1:${ENDPOINT_PORT}/from-inside && exit 0; sleep 0.2; done; exit 1`]);
  return r.stdout;
}

test('a server bound to 127.0.0.1 inside an instance with no network is reached through the Relay RPC; the relay process goes with the call', async () => {
  const id = await launch(LOOPBACK_SERVER);
  const r = await getThroughRelay(id, 8123);
  assert.equal(r.error, null, r.error?.details);
  assert.match(r.data.toString(), /^HTTP\/1\.0 200/);
  assert.match(r.data.toString(), /hello from 127\.0\.0\.1 inside$/);
  assert.equal(r.eof, true, 'the server closing its side arrives as eof');
  const pid = await containerPid(id);
  for (let i = 0; i < 20 && (await processesWith('nsenter', String(pid), 'TCP:127.0.0.1:8123,nodelay')).length > 0; i++) await sleep(100);
  assert.deepEqual(await processesWith('nsenter', String(pid), 'TCP:127.0.0.1:8123,nodelay'), [], 'no relay process is left once the call ended');
  await manager.instances.cancel(id, 0);
});

test('Relay refuses clearly: nothing listening, an execution not running here, a bad port, no first frame', async () => {
  const id = await launch('sleep 30');
  const refused = await relayOnce(id, 8999, 'hello');
  assert.equal(refused.error?.code, status.FAILED_PRECONDITION);
  assert.equal(refused.error?.details, `nothing listens on port 8999 in execution ${id}`);

  const unknown = await relayOnce(randomUUID(), 8999);
  assert.equal(unknown.error?.code, status.NOT_FOUND);

  for (const port of [0, 70000]) {
    const bad = await relayOnce(id, port);
    assert.equal(bad.error?.code, status.INVALID_ARGUMENT, `port ${port}`);
    assert.match(bad.error!.details, /not a TCP port/);
  }
  const empty = await new Promise<ServiceError>((resolve) => {
    const call = manager.client.relay();
    call.on('error', resolve);
    call.on('data', () => {});
    call.end();
  });
  assert.equal(empty.code, status.INVALID_ARGUMENT);
  await manager.instances.cancel(id, 0);
});

test('a caller that stops reading holds the server inside (bytes are not piled up in the broker), and then gets every byte', async () => {
  const totalBytes = 128 * MiB;
  // Counts what it managed to send, in its workspace (a folder of this host in bind mode).
  const id = await launch(`python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 8124)); s.listen(1)
c, _ = s.accept()
block = b"x" * (1 << 20)
for i in range(${totalBytes / MiB}):
    c.sendall(block)
    open("/workspace/sent.tmp", "w").write(str(i + 1)); __import__("os").replace("/workspace/sent.tmp", "/workspace/sent")
c.close()'`);
  const sentMiB = async () => Number(await readFile(join(t.config.workspacesDir, id, 'sent'), 'utf8').catch(() => '0'));
  let call: ClientDuplexStream<RelayFrame, RelayFrame> | undefined;
  let received = 0;
  let ended = false;
  let failure: ServiceError | undefined;
  for (let attempt = 0; attempt < 40 && received === 0; attempt++) {
    call = manager.client.relay();
    call.write({ open: { executionId: id, port: 8124 }, data: Buffer.alloc(0), eof: false });
    const opened = call;
    // The broker's first frame is empty: the connection inside is open. The server's bytes follow.
    const first = await new Promise<RelayFrame | ServiceError>((resolve) => {
      const onData = (f: RelayFrame) => {
        if (f.data.length === 0) return;
        opened.off('data', onData);
        resolve(f);
      };
      opened.on('data', onData);
      opened.once('error', resolve);
    });
    if ('code' in first) {
      await sleep(250);
      continue;
    }
    received = first.data.length;
  }
  assert.ok(call && received > 0, 'the relay reached the server');
  // Not reading now: the call stays paused while nothing listens for its data.
  call.pause();
  await sleep(3000);
  const heldAt = await sentMiB();
  await sleep(1500);
  assert.equal(await sentMiB(), heldAt, 'the server inside waits while nobody reads');
  assert.ok(heldAt < 48, `at most a few buffers' worth were sent ahead of the reader, not all ${totalBytes / MiB} MiB (sent ${heldAt} MiB)`);

  const done = new Promise<void>((resolve) => {
    call.on('data', (f: RelayFrame) => (received += f.data.length));
    call.on('end', () => {
      ended = true;
      resolve();
    });
    call.on('error', (err: ServiceError) => {
      failure = err;
      resolve();
    });
  });
  call.resume();
  call.end();
  await done;
  assert.equal(failure, undefined);
  assert.ok(ended);
  assert.equal(received, totalBytes, 'every byte arrived once the reader read again');
  assert.equal(await sentMiB(), totalBytes / MiB);
  await manager.instances.cancel(id, 0);
});

test("Paddock's endpoint is reached from inside a job with no network, restarted if its relay dies, set up again after a broker restart, and gone with the instance", async () => {
  const id = await launch('sleep 60');
  assert.match(await curlEndpoint(id), new RegExp(`^endpoint ${endpointToken} saw GET /from-inside\\n$`));

  const pid = await containerPid(id);
  const netns = await readlink(`/proc/${pid}/ns/net`);
  const listeners = async () => {
    const pids: number[] = [];
    for (const p of await processesWith('socat', `TCP-LISTEN:${ENDPOINT_PORT}`)) {
      if ((await readlink(`/proc/${p}/ns/net`).catch(() => '')) === netns) pids.push(p);
    }
    return pids;
  };
  const [listener, ...more] = await listeners();
  assert.ok(listener, 'a socat listens inside the instance');
  assert.deepEqual(more, []);
  process.kill(listener, 'SIGKILL');
  assert.match(await curlEndpoint(id), new RegExp(endpointToken), 'the relay was started again');
  assert.notEqual((await listeners())[0], listener);

  // A broker that stops leaves the instance running and takes its relays; the next one adopts and offers again.
  await manager.stop();
  assert.deepEqual(await listeners(), [], 'a stopped broker leaves no relay behind');
  manager = await startManager();
  assert.match(await curlEndpoint(id), new RegExp(endpointToken), 'the adopting broker offers the endpoint again');

  await manager.instances.cancel(id, 0);
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_CANCELLED);
  assert.deepEqual(await listeners(), []);
  assert.deepEqual(await processesWith('nsenter', String(pid)), [], 'no nsenter or socat of the instance is left');
  assert.match(textOf(await outputOf(t.bus, id)), /cancelled/);
});
