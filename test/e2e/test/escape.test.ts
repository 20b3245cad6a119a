// The escape suite: what a job tries in order to leave its box, under each container runtime, through the
// API of a real Paddock. No docker.sock inside; a fork bomb meets the process limit (fork() fails inside,
// the instance and its sandbox live on) and the host stays serviceable; a memory bomb and a disk fill end
// failed saying which limit they hit; /proc/sys and mount refuse; no capability is effective in a shell
// job, a Python job or a service. Every job is small: a low process limit, 64 MiB of memory, 20 MiB of
// disk, and a timeout.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { containersOf, waitFor } from '../src/index.js';

/** Low enough that a fork bomb meets it in a fraction of a second, high enough for sshd, tmux and a shell. */
const PIDS_LIMIT = 64;
const CONTAINER_RUNTIMES = ['runc', 'gvisor'] as const;
const NO_CAPABILITIES = '0000000000000000';

/**
 * One Paddock for both runtimes, with the same process limit: under runc it is the container's pids cgroup,
 * under gVisor RLIMIT_NPROC in the sandbox's own kernel (the pids cgroup there counts the sandbox's host
 * threads, so at 64 it would not even let the sandbox start; see the broker's containerSpec.ts).
 */
let paddock: RunningPaddock;
let alice: ApiClient;

before(async () => {
  paddock = await startPaddock({ env: { PADDOCK_PIDS_LIMIT: String(PIDS_LIMIT) } });
  alice = paddock.admin.withToken((await paddock.admin.request('POST', '/api/v1/users', { name: 'alice' })).body.token);
});

after(async () => {
  await paddock?.stop();
});

/**
 * What a shell sees of its way out: the socket, /proc/sys, mount, and its own capabilities. Each line says
 * "refused" or what succeeded, so a failing assertion shows what got through.
 */
const SHELL_ESCAPES = [
  'for s in /var/run/docker.sock /run/docker.sock; do [ -e "$s" ] && echo "socket $s present"; done',
  `echo "sockets: $(find / \\( -path /proc -o -path /sys \\) -prune -o -name docker.sock -print 2>/dev/null | tr '\\n' ' ')end"`,
  'if (echo 1 > /proc/sys/kernel/sysrq) 2>/dev/null; then echo "procsys written"; else echo "procsys refused"; fi',
  'if (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then echo "dropcaches written"; else echo "dropcaches refused"; fi',
  'command -v mount >/dev/null && echo "mount present"',
  'mkdir -p /tmp/m; if mount -t tmpfs none /tmp/m 2>/dev/null; then echo "mount tmpfs done"; else echo "mount tmpfs refused"; fi',
  'if mount -o remount,rw / 2>/dev/null; then echo "mount remount done"; else echo "mount remount refused"; fi',
  'grep CapEff /proc/self/status',
  'echo escapes-done',
].join('\n');

function assertNoEscape(log: string): void {
  assert.match(log, /^escapes-done$/m, log);
  assert.doesNotMatch(log, /^socket /m, `a docker socket is inside:\n${log}`);
  assert.match(log, /^sockets: end$/m, `a docker.sock is somewhere inside:\n${log}`);
  assert.match(log, /^procsys refused$/m, log);
  assert.match(log, /^dropcaches refused$/m, log);
  assert.match(log, /^mount present$/m, 'the image has mount, so its refusal below means something');
  assert.match(log, /^mount tmpfs refused$/m, log);
  assert.match(log, /^mount remount refused$/m, log);
  assert.match(log, new RegExp(`^CapEff:\\s+${NO_CAPABILITIES}$`, 'm'), log);
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

for (const containerRuntime of CONTAINER_RUNTIMES) {
  test(`[${containerRuntime}] a shell job finds no docker.sock, cannot write /proc/sys nor mount, and has no effective capability`, { timeout: 120_000 }, async () => {
    const { id } = await alice.submit({ kind: 'shell', command: SHELL_ESCAPES, containerRuntime, timeoutS: 60 });
    const final = await alice.waitFinal(id, 90_000);
    const log = await alice.logs(id);
    assert.equal(final.state, 'completed', `${final.error}\n${log}`);
    assertNoEscape(log);
  });

  test(`[${containerRuntime}] a Python job has no effective capability and cannot write /proc/sys`, { timeout: 120_000 }, async () => {
    const script = [
      'import re',
      'status = open("/proc/self/status").read()',
      'print("capeff", re.search(r"^CapEff:\\s+(\\w+)$", status, re.M).group(1))',
      'try:',
      '    open("/proc/sys/kernel/sysrq", "w").write("1")',
      '    print("procsys written")',
      'except OSError as e:',
      '    print("procsys refused", e.errno)',
    ].join('\n');
    const { id } = await alice.submit({ kind: 'python', script, containerRuntime, timeoutS: 60 });
    const final = await alice.waitFinal(id, 90_000);
    const log = await alice.logs(id);
    assert.equal(final.state, 'completed', `${final.error}\n${log}`);
    assert.match(log, new RegExp(`^capeff ${NO_CAPABILITIES}$`, 'm'), log);
    assert.match(log, /^procsys refused \d+$/m, log);
  });

  test(`[${containerRuntime}] a service has no effective capability in any of its processes, and no way out either`, { timeout: 120_000 }, async () => {
    const { id } = await alice.submit({ kind: 'shell', command: 'echo service-ready', service: true, containerRuntime, timeoutS: 90 });
    try {
      await alice.waitState(id, 'executing', 60_000);
      await waitFor('the service to idle', async () => /idling/.test(await alice.logs(id)), 30_000, 250);
      // A process may end between the glob and the read of its status (the loop's own greps do): no failure.
      const caps = await execIn(alice, id, ['sh', '-c', 'for s in /proc/[0-9]*/status; do grep -H CapEff "$s" 2>/dev/null || true; done']);
      const lines = caps.trim().split('\n');
      assert.ok(lines.length >= 2, `the service's processes are visible to it:\n${caps}`);
      for (const line of lines) assert.match(line, new RegExp(`CapEff:\\s+${NO_CAPABILITIES}$`), line);
      assertNoEscape(await execIn(alice, id, ['sh', '-c', SHELL_ESCAPES]));
    } finally {
      await alice.request('POST', `/api/v1/executions/${id}/cancel`);
      await alice.waitFinal(id, 60_000);
    }
  });

  test(`[${containerRuntime}] a fork bomb is stopped by the process limit; the job ends and Paddock still runs jobs`, { timeout: 120_000 }, async () => {
    // Forks sleeping children until the kernel (under gVisor, the sandbox's) refuses one; bounded at 10x the
    // limit so that a missing limit shows as "fork limit never met" instead of a machine out of processes.
    const script = [
      'import os, time',
      'forked = 0',
      'try:',
      `    while forked < ${PIDS_LIMIT * 10}:`,
      '        if os.fork() == 0:',
      '            time.sleep(30)',
      '            os._exit(0)',
      '        forked += 1',
      '    print("fork limit never met after", forked)',
      'except OSError as e:',
      '    print("fork refused after", forked, "errno", e.errno, flush=True)',
    ].join('\n');
    const { id } = await alice.submit({ kind: 'python', script, containerRuntime, timeoutS: 60 });
    const final = await alice.waitFinal(id, 90_000);
    const log = await alice.logs(id);
    // The job ends as its script does: the sandbox is not killed under it.
    assert.equal(final.state, 'completed', `${final.state}: ${final.error}\n${log}`);
    const refused = /^fork refused after (\d+) errno (\d+)$/m.exec(log);
    assert.ok(refused, `the process limit never refused a fork:\n${log}`);
    assert.equal(refused[2], '11', 'EAGAIN');
    assert.ok(Number(refused[1]) < PIDS_LIMIT, `${refused[1]} forks succeeded, more than the limit of ${PIDS_LIMIT}`);
    assert.deepEqual(await containersOf(id), [], 'the bomb and its children are gone with the job');

    assert.equal((await fetch(`${paddock.url}/healthz`)).status, 200, 'the gateway is healthy');
    const next = await alice.submit({ kind: 'shell', command: 'echo still-fine', containerRuntime });
    const nextFinal = await alice.waitFinal(next.id, 60_000);
    assert.equal(nextFinal.state, 'completed', `${nextFinal.error}`);
    assert.equal(await alice.logs(next.id), 'still-fine\n');
  });

  test(`[${containerRuntime}] a memory bomb ends failed, out of memory`, { timeout: 120_000 }, async () => {
    const { id } = await alice.submit({
      kind: 'python',
      script: 'blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))',
      resources: { memoryMb: 64 },
      containerRuntime,
      timeoutS: 60,
    });
    const final = await alice.waitFinal(id, 90_000);
    assert.equal(final.state, 'failed', `${final.state}: ${final.error}`);
    assert.match(final.error ?? '', /out of memory: the job used more than its 64 MiB limit/);
    assert.deepEqual(await containersOf(id), []);
  });

  test(`[${containerRuntime}] a disk fill past resources.diskMb ends failed, naming the disk limit`, { timeout: 120_000 }, async () => {
    // The sleep keeps the job alive past the broker's once-a-second look at the workspace.
    const { id } = await alice.submit({
      kind: 'shell',
      command: 'dd if=/dev/zero of=big bs=1M count=40 2>/dev/null; sleep 30',
      resources: { diskMb: 20 },
      containerRuntime,
      timeoutS: 60,
    });
    const final = await alice.waitFinal(id, 90_000);
    assert.equal(final.state, 'failed', `${final.state}: ${final.error}`);
    assert.match(final.error ?? '', /the workspace exceeded its 20 MiB disk limit/);
    assert.deepEqual(await containersOf(id), []);
  });
}
