// The request's isolation settings end to end, through the API of a real Paddock: gVisor on request,
// bridged executions that reach neither each other nor the host, a run token that reads its own execution
// only and dies with it, and what the API refuses. Every network probe runs INSIDE a container this test
// asked for, towards an address of a container or namespace this test made; a handful of attempts each,
// bounded by a 2 s timeout.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { freePort, startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { containersOf, docker, waitFor } from '../src/index.js';

let paddock: RunningPaddock;
let alice: ApiClient;
let bob: ApiClient;

before(async () => {
  paddock = await startPaddock();
  alice = paddock.admin.withToken((await paddock.admin.request('POST', '/api/v1/users', { name: 'alice' })).body.token);
  bob = paddock.admin.withToken((await paddock.admin.request('POST', '/api/v1/users', { name: 'bob' })).body.token);
});

after(async () => {
  await paddock?.stop();
});

/** A Python one-liner that prints "<label> open" or "<label> closed" for a TCP connection, tried `attempts` times. */
function probe(label: string, hostExpr: string, port: number, attempts = 2): string {
  return `python3 - <<'EOF'
import socket, time
host = ${hostExpr}
result = "closed"
for _ in range(${attempts}):
    try:
        socket.create_connection((host, ${port}), timeout=2).close()
        result = "open"
        break
    except Exception:
        time.sleep(0.2)
print("${label}", result)
EOF`;
}

/** The gateway of the instance's default route, read from the kernel's table inside it. */
const GATEWAY = `__import__("socket").inet_ntoa(bytes.fromhex([l.split()[2] for l in open("/proc/net/route") if l.split()[1] == "00000000"][0])[::-1])`;

test('containerRuntime "gvisor" runs a job under gVisor, unprivileged and within its limits; runc does not', async () => {
  const report = 'cat /proc/version; dmesg 2>/dev/null | head -n 3; grep CapEff /proc/self/status; echo "uid $(id -u)"';
  const gvisor = await alice.submit({ kind: 'shell', command: report, containerRuntime: 'gvisor' });
  assert.equal(gvisor.containerRuntime, 'gvisor');
  const runc = await alice.submit({ kind: 'shell', command: report });
  const [g, r] = [await alice.waitFinal(gvisor.id), await alice.waitFinal(runc.id)];
  const [gLog, rLog] = [await alice.logs(gvisor.id), await alice.logs(runc.id)];
  assert.equal(g.state, 'completed', `${g.error}\n${gLog}`);
  assert.equal(r.state, 'completed', `${r.error}\n${rLog}`);
  assert.match(gLog, /Starting gVisor/);
  assert.match(gLog, /^CapEff:\s+0000000000000000$/m);
  assert.match(gLog, /^uid 1000$/m);
  assert.doesNotMatch(rLog, /gVisor/);

  const bomb = await alice.submit({
    kind: 'python',
    script: 'blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))',
    resources: { memoryMb: 64 },
    containerRuntime: 'gvisor',
  });
  const ended = await alice.waitFinal(bomb.id);
  assert.equal(ended.state, 'failed');
  assert.match(ended.error ?? '', /memory/i, 'a memory bomb under gVisor ends on its memory limit');
  assert.deepEqual(await containersOf(bomb.id), []);
});

test("a bridged execution reaches neither another tenant's container nor the host's services, nor host.docker.internal", async () => {
  const hostPort = await freePort();
  const hostServer: Server = createServer((s) => {
    s.on('error', () => {});
    s.end('host\n');
  });
  await new Promise<void>((resolve) => hostServer.listen(hostPort, '0.0.0.0', resolve));
  try {
    // Bob's server answers on its own address, as it checks from inside: only isolation keeps alice out.
    const serverCmd = `python3 -m http.server 8080 >/dev/null 2>&1 & sleep 1; ${probe('self', '__import__("socket").gethostbyname(__import__("socket").gethostname())', 8080, 10)}
sleep 60`;
    const server = await bob.submit({ kind: 'shell', network: 'bridge', command: serverCmd, timeoutS: 120 });
    await waitFor('bob\'s server to answer on its own address', async () => /^self open$/m.test(await bob.logs(server.id)), 30_000, 250);
    const info = await docker.getContainer((await containersOf(server.id))[0]!.Id).inspect();
    const serverIp = Object.values(info.NetworkSettings.Networks)[0]!.IPAddress;
    assert.match(serverIp, /^\d+\.\d+\.\d+\.\d+$/);
    assert.deepEqual(Object.keys(info.NetworkSettings.Networks), [`paddock-${server.id}`], "bob's container is alone on its own network");

    const client = await alice.submit({
      kind: 'shell',
      network: 'bridge',
      command: [
        probe('tenant', JSON.stringify(serverIp), 8080),
        probe('host', GATEWAY, hostPort),
        'getent hosts host.docker.internal >/dev/null && echo "host-name resolves" || echo "host-name unknown"',
      ].join('\n'),
    });
    const done = await alice.waitFinal(client.id);
    const log = await alice.logs(client.id);
    assert.equal(done.state, 'completed', `${done.error}\n${log}`);
    assert.match(log, /^tenant closed$/m, `alice reached bob's container:\n${log}`);
    assert.match(log, /^host closed$/m, `alice reached the host's 0.0.0.0:${hostPort} through her gateway:\n${log}`);
    assert.match(log, /^host-name unknown$/m);
    await bob.request('POST', `/api/v1/executions/${server.id}/cancel`);
    await bob.waitFinal(server.id);
    // The networks go with the executions.
    await waitFor('the networks to be removed', async () => (await docker.listNetworks({ filters: { name: [`paddock-${server.id}`, `paddock-${client.id}`] } })).length === 0, 15_000, 250);
  } finally {
    await new Promise((r) => hostServer.close(r));
  }
});

/** Runs a command in a running instance through the API; its stdout. */
async function execIn(client: ApiClient, id: string, cmd: string[]): Promise<string> {
  const r = await client.request('POST', `/api/v1/instances/${id}/exec`, { cmd });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return String(r.body)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { stream?: string; data?: string })
    .filter((l) => l.stream === 'stdout')
    .map((l) => l.data)
    .join('');
}

test('only the named secrets are inside; the run token reads its own execution while it runs, and nothing once it ended', async () => {
  for (const [name, value] of [['WANTED', 'yes-please'], ['UNWANTED', 'keep-out']]) {
    assert.equal((await alice.request('PUT', `/api/v1/secrets/${name}`, { value })).status, 204);
  }
  const service = await alice.submit({ kind: 'shell', command: 'sleep 300', service: true, secrets: ['WANTED'] });
  const other = await alice.submit({ kind: 'shell', command: 'true' });
  await alice.waitState(service.id, 'executing');
  const env = await execIn(alice, service.id, ['sh', '-c', 'echo "wanted=${WANTED:-} unwanted=${UNWANTED:-}"; printf %s "$PADDOCK_RUN_TOKEN" > /tmp/t; echo "token=$(cut -c1-4 /tmp/t)"']);
  assert.match(env, /^wanted=yes-please unwanted= *$/m);
  assert.match(env, /^token=prt_$/m);
  const token = await execIn(alice, service.id, ['cat', '/tmp/t']);
  const asRun = alice.withToken(token);

  const own = await asRun.request('GET', `/api/v1/executions/${service.id}`);
  assert.equal(own.status, 200);
  assert.equal(own.body.state, 'executing');
  assert.equal((await asRun.request('GET', `/api/v1/executions/${other.id}`)).status, 404);
  assert.equal((await asRun.request('GET', '/api/v1/executions')).status, 401);
  assert.equal((await asRun.request('POST', `/api/v1/executions/${service.id}/cancel`)).status, 401);

  assert.equal((await alice.request('POST', `/api/v1/executions/${service.id}/cancel`)).status, 202);
  await alice.waitFinal(service.id);
  const dead = await asRun.request('GET', `/api/v1/executions/${service.id}`);
  assert.equal(dead.status, 401);
  assert.match(dead.body.error.message, /ended with it/);

  const missing = await alice.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true', secrets: ['NOPE'] });
  assert.equal(missing.status, 400);
  assert.match(missing.body.error.message, /no secret named "NOPE"/);
});

test('the API refuses a way out of the box with a 400 that says why', async () => {
  for (const [extra, message] of [
    [{ privileged: true }, /privileged containers are not allowed/],
    [{ binds: ['/var/run/docker.sock:/var/run/docker.sock'] }, /host mounts are not allowed/],
    [{ network: 'host' }, /"network": "host" is not allowed/],
    [{ containerRuntime: 'kata' }, /must be one of "runc", "gvisor"/],
  ] as const) {
    const r = await alice.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true', ...extra });
    assert.equal(r.status, 400, JSON.stringify(extra));
    assert.match(r.body.error.message, message);
  }
});
