// Bridged instances on the real engine: each on its own network, unable to reach another execution's
// container or the host, and the network gone with the instance (after a crash too). Every connection
// attempt is made from INSIDE a container this test created, to an address the test read from the engine;
// a handful of attempts, each bounded by a 2 s timeout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { NetworkMode } from '@paddock/proto';
import { freePort } from '@paddock/testkit';
import { DockerProvider } from '../src/providers/docker/dockerProvider.js';
import { bridgeName, executionNetworkName } from '../src/providers/docker/executionNetworks.js';
import { labels } from '../src/providers/docker/labels.js';
import { removeContainersOf } from './support/containers.js';
import { shellSpec } from './support/specs.js';

const docker = new Docker({ socketPath: process.env['DOCKER_SOCKET'] ?? '/var/run/docker.sock' });
const brokerId = `test-networks-${process.pid}`;
const SERVER_PORT = 8080;
/** A server on every address of the instance, so that only the network can keep a caller out. */
const SERVE = `python3 -c 'import http.server as h; h.HTTPServer(("0.0.0.0", ${SERVER_PORT}), h.SimpleHTTPRequestHandler).serve_forever()'`;

let dir: string;
let provider: DockerProvider;
let hostServer: Server;
let hostPort: number;
let allowedHostPort: number;
let allowedServer: Server;
const created: string[] = [];

async function listen(port: number): Promise<Server> {
  const server = createServer((socket) => {
    // A prober that closes at once resets the connection: nothing to report.
    socket.on('error', () => {});
    socket.end('host says hi\n');
  });
  await new Promise<void>((resolve) => server.listen(port, '0.0.0.0', resolve));
  return server;
}

async function launch(ownerId: string, command: string): Promise<string> {
  const executionId = randomUUID();
  created.push(executionId);
  await provider.create(
    {
      labels: { brokerId, executionId, ownerId, deadlineMs: Date.now() + 120_000 },
      spec: shellSpec(command, { network: NetworkMode.NETWORK_MODE_BRIDGE }),
      image: 'paddock/base:latest',
      pidsLimit: 64,
    },
    () => {},
  );
  await provider.start(executionId);
  return executionId;
}

async function networkOf(executionId: string): Promise<{ name: string; ip: string; gateway: string }> {
  const info = await docker.getContainer(`paddock-${executionId}`).inspect();
  const entries = Object.entries(info.NetworkSettings.Networks);
  assert.equal(entries.length, 1, `one network only, got ${entries.map(([n]) => n).join(', ')}`);
  const [name, net] = entries[0]!;
  return { name, ip: net.IPAddress, gateway: net.Gateway };
}

/** Whether a TCP connection from inside the instance to host:port opens within 2 s, tried up to `attempts` times. */
async function connectsFromInside(executionId: string, host: string, port: number, attempts: number): Promise<boolean> {
  const code = `import socket,sys\ntry:\n  socket.create_connection((${JSON.stringify(host)}, ${port}), timeout=2).close(); print("open")\nexcept Exception as e:\n  print("closed", e)`;
  for (let i = 0; i < attempts; i++) {
    const proc = await provider.exec(executionId, { cmd: ['python3', '-c', code], stdin: new Uint8Array() });
    let out = '';
    for await (const frame of proc.output) out += frame.data.toString();
    await proc.exitCode();
    if (out.startsWith('open')) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-networks-'));
  hostPort = await freePort();
  hostServer = await listen(hostPort);
  allowedHostPort = await freePort();
  allowedServer = await listen(allowedHostPort);
  provider = new DockerProvider(docker, {
    imagesDir: join(dir, 'images'),
    workspaceMode: 'bind',
    workspacesDir: join(dir, 'workspaces'),
    hostTcpPortsOpen: [allowedHostPort],
  });
});

after(async () => {
  for (const id of created) await provider.remove(id).catch(() => {});
  await removeContainersOf(docker, brokerId);
  for (const n of await docker.listNetworks({ filters: { label: [`${labels.brokerId}=${brokerId}`] } })) await docker.getNetwork(n.Id).remove().catch(() => {});
  // The allowance this test's broker added for its own port; the rest of the rules stay as brokers keep them.
  await promisify(execFile)('iptables', ['-w', '5', '-D', 'PADDOCK-INPUT', '-p', 'tcp', '--dport', String(allowedHostPort), '-j', 'RETURN']).catch(() => {});
  await promisify(execFile)('ip6tables', ['-w', '5', '-D', 'PADDOCK-INPUT', '-p', 'tcp', '--dport', String(allowedHostPort), '-j', 'RETURN']).catch(() => {});
  await new Promise((r) => hostServer?.close(r));
  await new Promise((r) => allowedServer?.close(r));
  await rm(dir, { recursive: true, force: true });
});

test("each bridged execution is alone on a network of its own, labelled with it, on a Paddock bridge with inter-container traffic off", async () => {
  const a = await launch('alice', 'sleep 60');
  const b = await launch('bob', 'sleep 60');
  const [netA, netB] = [await networkOf(a), await networkOf(b)];
  assert.equal(netA.name, executionNetworkName(a));
  assert.equal(netB.name, executionNetworkName(b));
  assert.notEqual(netA.gateway, netB.gateway, 'different subnets');
  const info = await docker.getNetwork(netA.name).inspect();
  assert.equal(info.Labels?.[labels.executionId], a);
  assert.equal(info.Labels?.[labels.owner], 'alice');
  assert.equal(info.Options?.['com.docker.network.bridge.enable_icc'], 'false');
  assert.equal(info.Options?.['com.docker.network.bridge.name'], bridgeName(a));
  assert.deepEqual(Object.keys(info.Containers ?? {}).length, 1);
});

test("a bridged instance cannot reach another execution's container, which its own instance reaches", async () => {
  const server = await launch('bob', SERVE);
  const client = await launch('alice', 'sleep 60');
  const { ip } = await networkOf(server);
  // The server answers on that address (seen from inside its own instance): only isolation keeps the other out.
  assert.equal(await connectsFromInside(server, ip, SERVER_PORT, 10), true, 'the server never answered on its own address');
  assert.equal(await connectsFromInside(client, ip, SERVER_PORT, 2), false, "alice's instance reached bob's container");
});

test("a bridged instance cannot reach the host's services through its gateway address, except a port the broker allows", async () => {
  const client = await launch('alice', 'sleep 60');
  const { gateway } = await networkOf(client);
  assert.equal(await connectsFromInside(client, gateway, hostPort, 2), false, `the host's 0.0.0.0:${hostPort} answered a bridged instance`);
  assert.equal(await connectsFromInside(client, gateway, allowedHostPort, 3), true, 'the port the broker allows is not reachable');
  assert.equal(await connectsFromInside(client, 'host.docker.internal', allowedHostPort, 3), true, 'host.docker.internal does not lead to the allowed port');
});

test('the network goes with the instance, and one a crash left behind is among the leftovers until it is removed', async () => {
  const done = await launch('alice', 'true');
  await provider.remove(done);
  await assert.rejects(docker.getNetwork(executionNetworkName(done)).inspect(), { statusCode: 404 });

  const orphan = await launch('alice', 'sleep 60');
  // A broker that died after removing the container and before removing its network.
  await docker.getContainer(`paddock-${orphan}`).remove({ force: true });
  assert.ok((await provider.leftovers(brokerId)).includes(orphan));
  await provider.remove(orphan);
  await assert.rejects(docker.getNetwork(executionNetworkName(orphan)).inspect(), { statusCode: 404 });
  assert.ok(!(await provider.leftovers(brokerId)).includes(orphan));
});
