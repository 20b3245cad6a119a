// The Docker provider on its own: reaching a port inside an instance with no network, its stats, listing by
// label; nothing of an instance published on the host; the process limit under runc and under gVisor.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import { ContainerRuntime, ExecutionKind, ExecutionSpec, NetworkMode } from '@paddock/proto';
import type { InstanceLabels, OutputFrame } from '../src/provider/provider.js';
import { DockerProvider } from '../src/providers/docker/dockerProvider.js';
import { removeContainersOf } from './support/containers.js';
import { shellSpec } from './support/specs.js';

const docker = new Docker({ socketPath: process.env['DOCKER_SOCKET'] ?? '/var/run/docker.sock' });
const brokerId = `test-provider-${process.pid}`;
let dir: string;
let provider: DockerProvider;
const executionId = randomUUID();

const labelsOf = (id: string): InstanceLabels => ({ brokerId, executionId: id, ownerId: 'jo', deadlineMs: Date.now() + 120_000 });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-provider-'));
  provider = new DockerProvider(docker, { imagesDir: join(dir, 'images'), workspaceMode: 'bind', workspacesDir: join(dir, 'workspaces') });
  // A server bound to the instance's own loopback, in an instance with no network at all.
  const server = 'import http.server as h\nclass H(h.BaseHTTPRequestHandler):\n  def do_GET(self):\n    self.send_response(200); self.end_headers(); self.wfile.write(b"hello from inside")\nh.HTTPServer(("127.0.0.1", 8123), H).serve_forever()';
  await provider.create({ labels: labelsOf(executionId), spec: ExecutionSpec.fromPartial({ ...shellSpec(`python3 -c '${server}'`), files: {} }), image: 'paddock/base:latest', pidsLimit: 64 }, () => {});
  await provider.start(executionId);
});
after(async () => {
  await provider.remove(executionId).catch(() => {});
  await removeContainersOf(docker, brokerId);
  await rm(dir, { recursive: true, force: true });
});

/** Whatever a connection through the relay gives back, until the server inside closes it or `doneWhen` says so. */
async function readThrough(stream: Duplex, doneWhen: (text: string) => boolean = () => false): Promise<string> {
  const chunks: Buffer[] = [];
  return new Promise<string>((resolve) => {
    const text = () => Buffer.concat(chunks).toString();
    stream.on('data', (d: Buffer) => {
      chunks.push(d);
      if (doneWhen(text())) {
        stream.destroy();
        resolve(text());
      }
    });
    stream.on('end', () => resolve(text()));
    stream.on('error', () => resolve(text()));
  });
}

test("reachPort opens a stream to a port inside the instance's network namespace, even with no network", async () => {
  let answer = '';
  for (let attempt = 0; attempt < 20 && !answer.includes('hello'); attempt++) {
    const stream = await provider.reachPort(executionId, 8123);
    const reply = readThrough(stream);
    stream.end('GET / HTTP/1.0\r\nHost: x\r\n\r\n');
    answer = await reply;
    if (!answer.includes('hello')) await new Promise((r) => setTimeout(r, 250));
  }
  assert.match(answer, /^HTTP\/1\.0 200/);
  assert.match(answer, /hello from inside$/);
});

test('list finds the instance by its labels; stats report what it uses', async () => {
  const [found, ...more] = await provider.list({ brokerId, executionId });
  assert.equal(more.length, 0);
  assert.equal(found?.state, 'running');
  assert.equal(found?.labels.ownerId, 'jo');
  const stats = await provider.stats(executionId);
  assert.ok(stats.memoryBytes > 0);
  assert.ok(stats.cpuNanos > 0);
});

test("a started agent with a network publishes nothing on the host: its sshd answers through the relay only", { timeout: 90_000 }, async () => {
  const id = randomUUID();
  // PADDOCK_IDLE keeps the entrypoint (and its sshd) up once the agent's workflow has ended: with no LLM
  // provider configured, the task agent ends at once.
  const spec = ExecutionSpec.fromPartial({
    ...shellSpec(''),
    kind: ExecutionKind.EXECUTION_KIND_AGENT,
    agent: { runtime: 'task', prompt: 'Say hi' },
    network: NetworkMode.NETWORK_MODE_BRIDGE,
    env: { PADDOCK_IDLE: '1' },
  });
  try {
    await provider.create({ labels: labelsOf(id), spec, image: 'paddock/task:latest', pidsLimit: 64, sshPassword: 'not-published-anywhere' }, () => {});
    await provider.start(id);
    let banner = '';
    for (let attempt = 0; attempt < 40 && !banner.startsWith('SSH-2.0-'); attempt++) {
      banner = await readThrough(await provider.reachPort(id, 2222), (text) => text.includes('\n')).catch(() => '');
      if (!banner.startsWith('SSH-2.0-')) await new Promise((r) => setTimeout(r, 250));
    }
    assert.match(banner, /^SSH-2\.0-OpenSSH/, 'sshd answers on 127.0.0.1:2222 inside, through the relay');

    const info = await docker.getContainer(`paddock-${id}`).inspect();
    assert.equal(info.State.Running, true, 'still running, so what it publishes is in force');
    assert.equal(info.HostConfig.NetworkMode, `paddock-${id}`, 'on its own bridged network');
    assert.deepEqual(info.HostConfig.PortBindings ?? {}, {}, 'no port binding asked of the engine');
    assert.equal(info.HostConfig.PublishAllPorts, false);
    assert.deepEqual(info.Config.ExposedPorts ?? {}, {}, 'no port exposed');
    const bound = Object.entries(info.NetworkSettings.Ports ?? {}).filter(([, bindings]) => (bindings ?? []).length > 0);
    assert.deepEqual(bound, [], 'no port published on the host');
    const [listed] = await docker.listContainers({ filters: { id: [info.Id] } });
    assert.deepEqual(listed?.Ports, [], '`docker ps` shows no port');
  } finally {
    await provider.remove(id);
  }
});

/** Everything the job wrote until `line` matches a line of it (or its output ended). */
async function outputUntil(frames: AsyncIterable<OutputFrame>, line: RegExp): Promise<string> {
  let text = '';
  for await (const frame of frames) {
    text += frame.data.toString('utf8');
    if (line.test(text)) break;
  }
  return text;
}

// Forks sleeping children until a fork is refused (bounded, so that a missing limit shows as "never met"),
// lets them go, and stays up: the instance must outlive its fork bomb.
const FORK_BOMB = [
  'import os, signal, time',
  'children = []',
  'try:',
  '    while len(children) < 1000:',
  '        pid = os.fork()',
  '        if pid == 0:',
  '            time.sleep(60)',
  '            os._exit(0)',
  '        children.append(pid)',
  '    print("fork limit never met after", len(children), flush=True)',
  'except OSError as e:',
  '    print("fork refused after", len(children), "errno", e.errno, flush=True)',
  'for pid in children:',
  '    os.kill(pid, signal.SIGKILL)',
  '    os.waitpid(pid, 0)',
  'print("children reaped", flush=True)',
  'time.sleep(60)',
].join('\n');

for (const [name, containerRuntime] of [
  ['runc', ContainerRuntime.CONTAINER_RUNTIME_RUNC],
  ['gvisor', ContainerRuntime.CONTAINER_RUNTIME_GVISOR],
] as const) {
  test(`[${name}] a fork bomb meets the process limit: fork() fails with EAGAIN inside, and the instance lives on`, { timeout: 90_000 }, async () => {
    const id = randomUUID();
    const limit = 64;
    // Under gVisor each forked Python costs about 3.5 MiB (the sandbox copies written pages in larger
    // pieces than Linux does): 64 of them need more than the 256 MiB a test job gets elsewhere.
    const spec = ExecutionSpec.fromPartial({ ...shellSpec(''), kind: ExecutionKind.EXECUTION_KIND_PYTHON, script: FORK_BOMB, pidsLimit: limit, memoryBytes: 1024 * 1024 * 1024, containerRuntime });
    try {
      await provider.create({ labels: labelsOf(id), spec, image: 'paddock/base:latest', pidsLimit: 512 }, () => {});
      const frames = await provider.attach(id, { replay: false });
      await provider.start(id);
      const log = await outputUntil(frames, /^children reaped$/m);
      const refused = /^fork refused after (\d+) errno (\d+)$/m.exec(log);
      assert.ok(refused, `no fork was refused:\n${log}`);
      assert.equal(Number(refused[2]), 11, 'EAGAIN, as Linux answers a fork past the limit');
      // Docker's init and the script itself are among the limit's processes.
      assert.ok(Number(refused[1]) < limit, `${refused[1]} forks succeeded under a limit of ${limit}`);
      assert.ok(Number(refused[1]) >= limit - 8, `only ${refused[1]} forks before the limit of ${limit}: something else holds the rest`);

      assert.equal((await provider.inspect(id)).running, true, 'the instance (under gVisor: its sandbox) outlived the fork bomb');
      const proc = await provider.exec(id, { cmd: ['python3', '-c', 'import os, sys; pid = os.fork()\nif pid == 0: os._exit(0)\nos.waitpid(pid, 0); print("forks again")'], stdin: new Uint8Array() });
      let out = '';
      for await (const frame of proc.output) out += frame.data.toString('utf8');
      assert.equal(out, 'forks again\n');
      assert.equal(await proc.exitCode(), 0);
    } finally {
      await provider.remove(id);
    }
  });
}

test('remove is idempotent and takes the workspace with it', async () => {
  await provider.remove(executionId);
  await provider.remove(executionId);
  assert.deepEqual(await provider.list({ brokerId, executionId }), []);
  assert.deepEqual(await provider.leftovers(brokerId), []);
});
