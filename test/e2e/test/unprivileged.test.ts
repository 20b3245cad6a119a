// Every container is unprivileged, whatever its kind: uid 1000 from its first process (Docker's init) to its
// last, no capabilities, no privilege escalation, Docker's seccomp filter, a read-only root filesystem in
// Paddock's images, no docker.sock; sshd runs unprivileged and still lets the owner in, through the relay
// only: no container publishes a port on the host.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freePort, startPaddock, startScriptedProvider, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { containersOf, docker, readZip, sshRun, waitFor } from '../src/index.js';

let paddock: RunningPaddock;

/** Where the stand-in provider listens on the host: billing's metering proxy forwards to it. */
let providerPort: number;

before(async () => {
  providerPort = await freePort();
  // The agent reaches the stand-in provider through billing's metering proxy, as every agent reaches its provider.
  paddock = await startPaddock({ env: { PADDOCK_LLM_UPSTREAMS: `openai=http://127.0.0.1:${providerPort}` } });
});

after(async () => {
  await paddock?.stop();
});

/**
 * A POSIX shell script that reports, as it sees them from inside: every process of the container (its
 * name, uids and capabilities), whether / and the writable places take a write, and any docker.sock.
 */
const PROBE = [
  `for s in /proc/[0-9]*/status; do l=$(grep -E '^(Name|Uid|CapPrm|CapEff|CapBnd|NoNewPrivs|Seccomp):' "$s" 2>/dev/null | tr -s '\\t\\n' '  '); [ -n "$l" ] && echo "proc $l"; done`,
  `echo "root mounted $(awk '$2 == "/" { split($4, o, ","); print o[1] }' /proc/self/mounts)"`,
  'for d in / /workspace /tmp "$HOME"; do if (echo x > "$d/.probe") 2>/dev/null; then echo "write $d ok"; rm -f "$d/.probe"; else echo "write $d refused"; fi; done',
  `echo "sockets: $(find / \\( -path /proc -o -path /sys \\) -prune -o -name docker.sock -print 2>/dev/null | tr '\\n' ' ')end"`,
  'echo probe-done',
].join('\n');

interface ProcessSeen {
  readonly name: string;
  readonly uids: readonly number[];
  readonly capPrm: string;
  readonly capEff: string;
  readonly capBnd: string;
  readonly noNewPrivs: string;
  readonly seccomp: string;
}

interface ProbeReport {
  readonly processes: readonly ProcessSeen[];
  /** The root filesystem's mount: `ro` or `rw`. */
  readonly root: string;
  readonly writes: ReadonlyMap<string, 'ok' | 'refused'>;
  readonly sockets: string;
}

function parseProbe(text: string): ProbeReport {
  assert.match(text, /probe-done/, text);
  const processes: ProcessSeen[] = [];
  const writes = new Map<string, 'ok' | 'refused'>();
  for (const line of text.split(/\r?\n/)) {
    const proc = /^proc Name: (.+?) Uid: (\d+) (\d+) (\d+) (\d+) CapPrm: (\w+) CapEff: (\w+) CapBnd: (\w+) NoNewPrivs: (\d) Seccomp: (\d)/.exec(line);
    if (proc) {
      const [, name, u1, u2, u3, u4, capPrm, capEff, capBnd, noNewPrivs, seccomp] = proc as unknown as string[];
      processes.push({ name: name!, uids: [u1, u2, u3, u4].map(Number), capPrm: capPrm!, capEff: capEff!, capBnd: capBnd!, noNewPrivs: noNewPrivs!, seccomp: seccomp! });
    }
    const write = /^write (\S+) (ok|refused)$/.exec(line);
    if (write) writes.set(write[1]!, write[2] as 'ok' | 'refused');
  }
  const sockets = /^sockets: (.*)end$/m.exec(text)?.[1]?.trim() ?? 'not reported';
  const root = /^root mounted (\w+)/m.exec(text)?.[1] ?? 'not reported';
  return { processes, root, writes, sockets };
}

const NO_CAPABILITIES = '0000000000000000';

/** Every process, Docker's init (PID 1) included, is uid 1000 with no capabilities, confined by seccomp. */
function assertUnprivileged(report: ProbeReport, expectedNames: readonly string[]): void {
  const names = report.processes.map((p) => p.name);
  for (const name of ['docker-init', ...expectedNames]) assert.ok(names.includes(name), `${name} among ${names.join(', ')}`);
  for (const p of report.processes) {
    assert.deepEqual(p.uids, [1000, 1000, 1000, 1000], `${p.name} runs as uid 1000`);
    assert.equal(p.capEff, NO_CAPABILITIES, `${p.name}: CapEff`);
    assert.equal(p.capPrm, NO_CAPABILITIES, `${p.name}: CapPrm`);
    assert.equal(p.capBnd, NO_CAPABILITIES, `${p.name}: CapBnd`);
    assert.equal(p.noNewPrivs, '1', `${p.name}: no_new_privs`);
    assert.equal(p.seccomp, '2', `${p.name}: seccomp filter`);
  }
  assert.equal(report.sockets, '', 'no docker.sock anywhere');
}

function assertReadOnlyRoot(report: ProbeReport): void {
  // uid 1000 cannot write to / in any case: the mount itself must be read-only.
  assert.equal(report.root, 'ro', 'the root filesystem is mounted read-only');
  assert.deepEqual(Object.fromEntries(report.writes), { '/': 'refused', '/workspace': 'ok', '/tmp': 'ok', '/home/agent': 'ok' });
}

/** Runs a command in a running instance through the API; its stdout. */
async function execIn(client: ApiClient, id: string, cmd: string[]): Promise<string> {
  const r = await client.request('POST', `/api/v1/instances/${id}/exec`, { cmd });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const lines = String(r.body)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { stream?: string; data?: string; exitCode?: number });
  assert.deepEqual(lines.at(-1), { exitCode: 0 }, String(r.body));
  return lines
    .filter((l) => l.stream === 'stdout')
    .map((l) => l.data)
    .join('');
}

/** What the engine was asked to publish of an execution's container, and what it publishes. */
async function publishedPortsOf(executionId: string): Promise<{ bindings: unknown; exposed: unknown; published: string[]; listed: unknown }> {
  const [container, ...more] = await containersOf(executionId);
  assert.ok(container && more.length === 0, `one container for ${executionId}`);
  const info = await docker.getContainer(container.Id).inspect();
  assert.equal(info.State.Running, true, 'running, so what it publishes is in force');
  return {
    bindings: info.HostConfig.PortBindings ?? {},
    exposed: info.Config.ExposedPorts ?? {},
    published: Object.entries(info.NetworkSettings.Ports ?? {})
      .filter(([, bindings]) => (bindings ?? []).length > 0)
      .map(([port]) => port),
    listed: container.Ports,
  };
}

test('a shell job runs as uid 1000 with no capabilities, PID 1 included, on a read-only root', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: PROBE });
  const final = await paddock.admin.waitFinal(id);
  const log = await paddock.admin.logs(id);
  assert.equal(final.state, 'completed', `${final.error}\n${log}`);
  const report = parseProbe(log);
  assertUnprivileged(report, ['sh']);
  assertReadOnlyRoot(report);
});

test('a Python job runs as uid 1000 with no capabilities, PID 1 included, on a read-only root', async () => {
  const script = `import subprocess, sys\nsys.exit(subprocess.run(['sh', '-c', ${JSON.stringify(PROBE)}]).returncode)\n`;
  const { id } = await paddock.admin.submit({ kind: 'python', script });
  const final = await paddock.admin.waitFinal(id);
  const log = await paddock.admin.logs(id);
  assert.equal(final.state, 'completed', `${final.error}\n${log}`);
  const report = parseProbe(log);
  assertUnprivileged(report, ['python3', 'sh']);
  assertReadOnlyRoot(report);
});

test('an agent runs as uid 1000 with no capabilities from its entrypoint on, on a read-only root where its CLI still has a home, and publishes no port', async () => {
  // The agent's first step waits for the test to have looked at its running container.
  const looked = '/tmp/paddock-test-looked';
  const provider = await startScriptedProvider({
    port: providerPort,
    openai: [
      { toolCalls: [{ name: 'run_shell', args: { command: `until [ -e ${looked} ]; do sleep 0.2; done; echo looked` } }] },
      { toolCalls: [{ name: 'run_shell', args: { command: PROBE } }] },
      { toolCalls: [{ name: 'finish', args: { summary: 'probed' } }] },
    ],
  });
  try {
    const { id } = await paddock.admin.submit({
      kind: 'agent',
      runtime: 'task',
      prompt: 'Report what you can do here',
      env: { OPENAI_API_KEY: 'sk-test' },
    });
    await paddock.admin.waitState(id, 'executing');
    await waitFor('the agent to wait for the test', async () => provider.requests.length >= 1);
    // An agent with a network and sshd: nothing of it is published on the host.
    assert.deepEqual(await publishedPortsOf(id), { bindings: {}, exposed: {}, published: [], listed: [] });
    await execIn(paddock.admin, id, ['touch', looked]);

    const final = await paddock.admin.waitFinal(id);
    const log = await paddock.admin.logs(id);
    assert.equal(final.state, 'completed', `${final.error}\n${log}`);
    const report = parseProbe(log);
    // The entrypoint, its sshd, tmux and the agent itself.
    assertUnprivileged(report, ['paddock-entrypo', 'sshd', 'tmux: server', 'node', 'bash']);
    assertReadOnlyRoot(report);
  } finally {
    await provider.stop();
  }
});

test('a service is unprivileged throughout and publishes no port; its owner logs in over SSH through the tunnel to its unprivileged sshd, and only a hash of the password is inside', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'echo service-ready', service: true, network: 'bridge' });
  await paddock.admin.waitState(id, 'executing');
  await waitFor('the service to idle', async () => /idling/.test(await paddock.admin.logs(id)));
  try {
    const report = parseProbe(await execIn(paddock.admin, id, ['sh', '-c', PROBE]));
    assertUnprivileged(report, ['paddock-entrypo', 'sshd', 'tmux: server', 'sleep']);
    assertReadOnlyRoot(report);

    // A bridged service, with sshd listening: still, nothing of it is published on the host.
    assert.deepEqual(await publishedPortsOf(id), { bindings: {}, exposed: {}, published: [], listed: [] });

    const access = await paddock.admin.request('GET', `/api/v1/instances/${id}/ssh`);
    assert.equal(access.status, 200, JSON.stringify(access.body));
    assert.equal(access.body.username, 'agent');
    assert.equal(access.body.tunnelPath, `/api/v1/instances/${id}/tunnel?port=2222`);
    assert.equal(access.body.host, undefined, 'no host address: sshd is reached through the tunnel only');
    assert.equal(access.body.port, undefined);
    const over = await sshRun(paddock.url, paddock.admin.token, access.body, `id -u; grep CapEff /proc/self/status; tmux has-session -t agent && echo tmux-reachable; ${PROBE}`);
    assert.match(over, /^1000\nCapEff:\s+0{16}\ntmux-reachable\n/);
    // The SSH session's own processes (sshd's child for the session, its shell) are unprivileged too.
    assertUnprivileged(parseProbe(over), ['sshd', 'bash']);
    await assert.rejects(sshRun(paddock.url, paddock.admin.token, { ...access.body, password: `${access.body.password}x` }, 'true'), /authentication methods failed/);

    const found = await execIn(paddock.admin, id, ['sh', '-c', `grep -rlF -e "$1" /opt/paddock /run/paddock /home/agent /tmp /workspace 2>/dev/null; echo searched`, 'sh', access.body.password]);
    assert.equal(found, 'searched\n', 'the password is in no file of the container');
  } finally {
    await paddock.admin.request('POST', `/api/v1/executions/${id}/cancel`);
  }
});

test('with workspaces kept in the engine (archive mode), files and the script still come in through volumes under a read-only root', async () => {
  await using archive = await startPaddock({ env: { PADDOCK_WORKSPACE_MODE: 'archive' } });
  const script = [
    'import pathlib, subprocess',
    "n = int(pathlib.Path('data/n.txt').read_text())",
    "pathlib.Path('out.txt').write_text(str(n * n))",
    `subprocess.run(['sh', '-c', ${JSON.stringify(PROBE)}], check=True)`,
  ].join('\n');
  const { id } = await archive.admin.submit({ kind: 'python', script, files: { 'data/n.txt': '12' } });
  const final = await archive.admin.waitFinal(id);
  const log = await archive.admin.logs(id);
  assert.equal(final.state, 'completed', `${final.error}\n${log}`);
  const report = parseProbe(log);
  assertUnprivileged(report, ['python3']);
  assertReadOnlyRoot(report);
  const zip = await readZip((await archive.admin.artifacts(id)).bytes);
  try {
    assert.equal(await zip.read('out.txt'), '144');
    assert.equal(await zip.read('data/n.txt'), '12');
  } finally {
    await zip.close();
  }
});
