// The Docker provider on its own: reaching a port inside an instance with no network, its stats, listing by label.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { ExecutionSpec } from '@paddock/proto';
import { DockerProvider } from '../src/providers/docker/dockerProvider.js';
import { removeContainersOf } from './support/containers.js';
import { shellSpec } from './support/specs.js';

const docker = new Docker({ socketPath: process.env['DOCKER_SOCKET'] ?? '/var/run/docker.sock' });
const brokerId = `test-provider-${process.pid}`;
let dir: string;
let provider: DockerProvider;
const executionId = randomUUID();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-provider-'));
  provider = new DockerProvider(docker, { imagesDir: join(dir, 'images'), workspaceMode: 'bind', workspacesDir: join(dir, 'workspaces'), sshHost: '127.0.0.1' });
  // A server bound to the instance's own loopback, in an instance with no network at all.
  const server = 'import http.server as h\nclass H(h.BaseHTTPRequestHandler):\n  def do_GET(self):\n    self.send_response(200); self.end_headers(); self.wfile.write(b"hello from inside")\nh.HTTPServer(("127.0.0.1", 8123), H).serve_forever()';
  await provider.create(
    { labels: { brokerId, executionId, ownerId: 'jo', deadlineMs: Date.now() + 60_000 }, spec: ExecutionSpec.fromPartial({ ...shellSpec(`python3 -c '${server}'`), files: {} }), image: 'paddock/base:latest', pidsLimit: 64 },
    () => {},
  );
  await provider.start(executionId);
});
after(async () => {
  await provider.remove(executionId).catch(() => {});
  await removeContainersOf(docker, brokerId);
  await rm(dir, { recursive: true, force: true });
});

test("reachPort opens a stream to a port inside the instance's network namespace, even with no network", async () => {
  let answer = '';
  for (let attempt = 0; attempt < 20 && !answer.includes('hello'); attempt++) {
    const stream = await provider.reachPort(executionId, 8123);
    const chunks: Buffer[] = [];
    answer = await new Promise<string>((resolve) => {
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
      stream.on('error', () => resolve(''));
      stream.end('GET / HTTP/1.0\r\nHost: x\r\n\r\n');
    });
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

test('remove is idempotent and takes the workspace with it', async () => {
  await provider.remove(executionId);
  await provider.remove(executionId);
  assert.deepEqual(await provider.list({ brokerId, executionId }), []);
  assert.deepEqual(await provider.leftovers(brokerId), []);
});
