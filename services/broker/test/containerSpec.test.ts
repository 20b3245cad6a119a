import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerRuntime, ExecutionKind, ExecutionSpec, NetworkMode } from '@paddock/proto';
import { containerSpec, type ContainerSpecInput } from '../src/providers/docker/containerSpec.js';

const MiB = 1024 * 1024;

function input(spec: Partial<ExecutionSpec>, extra: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    executionId: 'exec-1',
    ownerId: 'owner-1',
    brokerId: 'broker-1',
    spec: ExecutionSpec.fromPartial({
      kind: ExecutionKind.EXECUTION_KIND_SHELL,
      command: 'echo hi',
      cpuMillis: 1500,
      memoryBytes: 256 * MiB,
      timeoutMs: 60_000,
      ...spec,
    }),
    image: 'paddock/base:latest',
    pidsLimit: 512,
    deadlineMs: 1_700_000_000_000,
    ...extra,
    imageIsOurs: extra.imageIsOurs ?? false,
  };
}

const KINDS: readonly (readonly [string, Partial<ExecutionSpec>])[] = [
  ['shell job', { kind: ExecutionKind.EXECUTION_KIND_SHELL, command: 'true' }],
  ['Python job', { kind: ExecutionKind.EXECUTION_KIND_PYTHON, script: 'print(1)' }],
  ['agent', { kind: ExecutionKind.EXECUTION_KIND_AGENT, agent: { runtime: 'task', prompt: 'hi', repoUrl: '', repoBranch: '', repoToken: '' }, network: NetworkMode.NETWORK_MODE_BRIDGE }],
  ['service', { kind: ExecutionKind.EXECUTION_KIND_SHELL, command: 'true', service: true, network: NetworkMode.NETWORK_MODE_BRIDGE }],
];

for (const [kind, spec] of KINDS) {
  for (const imageIsOurs of [true, false]) {
    test(`a ${kind} (${imageIsOurs ? "Paddock's image" : 'any image'}) starts as uid 1000 with every capability dropped, no privilege escalation, the default seccomp profile, under an init`, () => {
      const c = containerSpec(input(spec, { imageIsOurs }));
      assert.equal(c.User, '1000:1000');
      assert.deepEqual(c.HostConfig?.CapDrop, ['ALL']);
      assert.equal(c.HostConfig?.CapAdd, undefined);
      assert.deepEqual(c.HostConfig?.SecurityOpt, ['no-new-privileges']);
      assert.notEqual(c.HostConfig?.Privileged, true);
      assert.equal(c.HostConfig?.Init, true);
      assert.equal(c.WorkingDir, '/workspace');
      assert.equal(c.Image, 'paddock/base:latest');
    });
  }
}

test("in Paddock's images the root filesystem is read-only, /tmp and $HOME are size-limited tmpfs, and files come in through volumes", () => {
  const shell = containerSpec(input({ memoryBytes: 256 * MiB }, { imageIsOurs: true }));
  assert.equal(shell.HostConfig?.ReadonlyRootfs, true);
  assert.deepEqual(Object.keys(shell.HostConfig?.Tmpfs ?? {}).sort(), ['/home/agent', '/tmp']);
  assert.match(shell.HostConfig?.Tmpfs?.['/tmp'] ?? '', /(^|,)size=134217728(,|$)/);
  assert.match(shell.HostConfig?.Tmpfs?.['/home/agent'] ?? '', /(^|,)uid=1000,gid=1000(,|$)/);
  assert.match(shell.HostConfig?.Tmpfs?.['/home/agent'] ?? '', /(^|,)size=134217728(,|$)/);
  // The workspace kept in the engine is a volume; a shell job gets nothing in the run directory.
  assert.deepEqual(shell.HostConfig?.Mounts?.map((m) => [m.Type, m.Target]), [['volume', '/workspace']]);
  assert.equal(shell.HostConfig?.Mounts?.[0]?.Source, '', 'anonymous: removed with the container');
  assert.equal(shell.HostConfig?.Mounts?.[0]?.VolumeOptions?.Labels['io.paddock.execution-id'], 'exec-1');

  const python = containerSpec(input({ kind: ExecutionKind.EXECUTION_KIND_PYTHON, script: 'print(1)' }, { imageIsOurs: true, workspaceDir: '/srv/ws/exec-1' }));
  assert.equal(python.HostConfig?.ReadonlyRootfs, true);
  assert.deepEqual(python.HostConfig?.Binds, ['/srv/ws/exec-1:/workspace:rw']);
  assert.deepEqual(python.HostConfig?.Mounts?.map((m) => [m.Type, m.Target]), [['volume', '/opt/paddock/run']]);
});

test('an agent also gets a tmpfs of its own for the entrypoint and sshd, owned by uid 1000, whatever the image', () => {
  for (const imageIsOurs of [true, false]) {
    const c = containerSpec(input(KINDS[2]![1], { imageIsOurs }));
    assert.match(c.HostConfig?.Tmpfs?.['/run/paddock'] ?? '', /(^|,)uid=1000,gid=1000,mode=0700(,|$)/);
    assert.match(c.HostConfig?.Tmpfs?.['/run/paddock'] ?? '', /(^|,)size=\d+(,|$)/);
  }
  const ours = containerSpec(input(KINDS[2]![1], { imageIsOurs: true }));
  assert.deepEqual(ours.HostConfig?.Mounts?.map((m) => m.Target), ['/workspace', '/opt/paddock/run']);
  assert.equal(ours.HostConfig?.ReadonlyRootfs, true);
});

test("an image that is not Paddock's keeps a writable root filesystem and its own /tmp", () => {
  const c = containerSpec(input({}, { imageIsOurs: false }));
  assert.equal(c.HostConfig?.ReadonlyRootfs, false);
  assert.deepEqual(c.HostConfig?.Tmpfs, {});
  assert.equal(c.HostConfig?.Mounts, undefined);
  assert.equal(containerSpec(input({})).HostConfig?.ReadonlyRootfs, false, 'not known to be ours');
});

test('without a memory limit the tmpfs still have a size', () => {
  const c = containerSpec(input({ memoryBytes: 0 }, { imageIsOurs: true }));
  assert.match(c.HostConfig?.Tmpfs?.['/tmp'] ?? '', /(^|,)size=[1-9]\d*(,|$)/);
});

test('no container publishes or exposes a port on the host, whatever its kind and network: sshd and the rest are reached through the relay', () => {
  for (const [kind, spec] of KINDS) {
    for (const network of [NetworkMode.NETWORK_MODE_NONE, NetworkMode.NETWORK_MODE_BRIDGE]) {
      for (const containerRuntime of [ContainerRuntime.CONTAINER_RUNTIME_RUNC, ContainerRuntime.CONTAINER_RUNTIME_GVISOR]) {
        const c = containerSpec(input({ ...spec, network, containerRuntime }, { imageIsOurs: true, hostReachable: true }));
        assert.equal(c.ExposedPorts, undefined, kind);
        assert.equal(c.HostConfig?.PortBindings, undefined, kind);
        assert.notEqual(c.HostConfig?.PublishAllPorts, true, kind);
      }
    }
  }
  assert.deepEqual(containerSpec(input(KINDS[2]![1])).Cmd, ['/opt/paddock/bin/paddock-entrypoint']);
});

test('CPU, memory (with no swap beyond it) and processes are limited as the spec asks; under runc the pids cgroup is the process limit', () => {
  const c = containerSpec(input({ cpuMillis: 1500, memoryBytes: 256 * MiB, pidsLimit: 64 }));
  assert.equal(c.HostConfig?.NanoCpus, 1_500_000_000);
  assert.equal(c.HostConfig?.Memory, 256 * MiB);
  assert.equal(c.HostConfig?.MemorySwap, 256 * MiB);
  assert.equal(c.HostConfig?.PidsLimit, 64);
  // RLIMIT_NPROC outside a sandbox counts the host's uid 1000 across every container: not for runc.
  assert.equal(c.HostConfig?.Ulimits, undefined);
});

test("the broker's process limit applies when the spec sets none", () => {
  assert.equal(containerSpec(input({ pidsLimit: 0 }, { pidsLimit: 512 })).HostConfig?.PidsLimit, 512);
  const gvisor = containerSpec(input({ pidsLimit: 0, containerRuntime: ContainerRuntime.CONTAINER_RUNTIME_GVISOR }, { pidsLimit: 512 }));
  assert.deepEqual(gvisor.HostConfig?.Ulimits, [{ Name: 'nproc', Soft: 512, Hard: 512 }]);
});

test("under gVisor the process limit is RLIMIT_NPROC, enforced by the sandbox's kernel; the pids cgroup only guards the host, above what the sandbox uses at that limit", () => {
  for (const limit of [16, 64, 512]) {
    const c = containerSpec(input({ pidsLimit: limit, containerRuntime: ContainerRuntime.CONTAINER_RUNTIME_GVISOR }));
    assert.deepEqual(c.HostConfig?.Ulimits, [{ Name: 'nproc', Soft: limit, Hard: limit }], 'soft and hard alike: the job cannot raise it');
    // Measured: about 50 host tasks for the sandbox itself and 5.3 per sleeping process of a fork bomb.
    const guard = c.HostConfig?.PidsLimit ?? 0;
    assert.ok(guard >= 2 * (50 + 5.3 * limit), `a guard of ${guard} for a limit of ${limit} is met before the job's own limit`);
  }
});

test('a process limit that is not a positive whole number is refused, not passed to the engine (where -1 means none)', () => {
  for (const containerRuntime of [ContainerRuntime.CONTAINER_RUNTIME_RUNC, ContainerRuntime.CONTAINER_RUNTIME_GVISOR]) {
    assert.throws(() => containerSpec(input({ pidsLimit: -1, containerRuntime })), { name: 'UnsupportedSpecError', message: /process limit of -1/ });
  }
  assert.throws(() => containerSpec(input({ pidsLimit: 0 }, { pidsLimit: 0 })), { name: 'UnsupportedSpecError' });
});

test("no network unless bridge is asked; bridge is the execution's own network, and the host is not a name there", () => {
  for (const network of [NetworkMode.NETWORK_MODE_UNSPECIFIED, NetworkMode.NETWORK_MODE_NONE]) {
    const c = containerSpec(input({ network }));
    assert.equal(c.HostConfig?.NetworkMode, 'none');
    assert.equal(c.HostConfig?.ExtraHosts, undefined);
  }
  const bridge = containerSpec(input({ network: NetworkMode.NETWORK_MODE_BRIDGE }));
  assert.equal(bridge.HostConfig?.NetworkMode, 'paddock-exec-1');
  assert.notEqual(bridge.HostConfig?.NetworkMode, 'bridge', "never Docker's shared default bridge");
  assert.equal(bridge.HostConfig?.ExtraHosts, undefined);
  const other = containerSpec(input({ network: NetworkMode.NETWORK_MODE_BRIDGE }, { executionId: 'exec-2' }));
  assert.notEqual(other.HostConfig?.NetworkMode, bridge.HostConfig?.NetworkMode);
});

test('host.docker.internal resolves only on a broker that lets bridged instances reach some ports of its host', () => {
  const open = containerSpec(input({ network: NetworkMode.NETWORK_MODE_BRIDGE }, { hostReachable: true }));
  assert.deepEqual(open.HostConfig?.ExtraHosts, ['host.docker.internal:host-gateway']);
  const offline = containerSpec(input({ network: NetworkMode.NETWORK_MODE_NONE }, { hostReachable: true }));
  assert.equal(offline.HostConfig?.ExtraHosts, undefined);
});

test('the container runtime is runc unless gVisor is asked for, then runsc; one the broker does not know is refused', () => {
  assert.equal(containerSpec(input({})).HostConfig?.Runtime, 'runc');
  assert.equal(containerSpec(input({ containerRuntime: ContainerRuntime.CONTAINER_RUNTIME_UNSPECIFIED })).HostConfig?.Runtime, 'runc');
  assert.equal(containerSpec(input({ containerRuntime: ContainerRuntime.CONTAINER_RUNTIME_RUNC })).HostConfig?.Runtime, 'runc');
  for (const [kind, spec] of KINDS) {
    const c = containerSpec(input({ ...spec, containerRuntime: ContainerRuntime.CONTAINER_RUNTIME_GVISOR }));
    assert.equal(c.HostConfig?.Runtime, 'runsc', kind);
    // gVisor changes the kernel under the job, not what the job may do.
    assert.equal(c.User, '1000:1000', kind);
    assert.deepEqual(c.HostConfig?.CapDrop, ['ALL'], kind);
  }
  assert.throws(() => containerSpec(input({ containerRuntime: 7 as ContainerRuntime })), { name: 'UnsupportedSpecError', message: /unknown container runtime 7/ });
});

test('labels name the execution, its owner, the broker and the deadline, so a restarted broker finds its own', () => {
  const c = containerSpec(input({}, { executionId: 'exec-42', ownerId: 'alice', brokerId: 'broker-7', deadlineMs: 1234 }));
  assert.deepEqual(c.Labels, {
    'io.paddock.execution-id': 'exec-42',
    'io.paddock.owner': 'alice',
    'io.paddock.broker-id': 'broker-7',
    'io.paddock.deadline-ms': '1234',
    'io.paddock.disk-bytes': '0',
  });
  assert.equal(c.name, 'paddock-exec-42');
});

test('a shell job is /bin/sh -c COMMAND; a Python job runs its script unbuffered; the image entrypoint is bypassed', () => {
  const shell = containerSpec(input({ kind: ExecutionKind.EXECUTION_KIND_SHELL, command: 'ls -la && echo "a b"' }));
  assert.deepEqual(shell.Cmd, ['/bin/sh', '-c', 'ls -la && echo "a b"']);
  assert.deepEqual(shell.Entrypoint, []);
  const python = containerSpec(input({ kind: ExecutionKind.EXECUTION_KIND_PYTHON, script: 'print(1)' }));
  assert.deepEqual(python.Cmd, ['python3', '-u', '/opt/paddock/run/main.py']);
});

test("the request's environment reaches the job beside Paddock's own", () => {
  const c = containerSpec(input({ env: { FOO: 'bar', EMPTY: '' } }, { executionId: 'exec-9' }));
  assert.ok(c.Env?.includes('FOO=bar'));
  assert.ok(c.Env?.includes('EMPTY='));
  assert.ok(c.Env?.includes('PADDOCK_EXECUTION_ID=exec-9'));
});

test('output is attached, not a TTY, and nothing reads stdin', () => {
  const c = containerSpec(input({}));
  assert.equal(c.Tty, false);
  assert.equal(c.OpenStdin, false);
  assert.equal(c.AttachStdout, true);
  assert.equal(c.AttachStderr, true);
});

test('a kind it cannot run is refused', () => {
  assert.throws(() => containerSpec(input({ kind: ExecutionKind.EXECUTION_KIND_UNSPECIFIED })), /unsupported execution kind/);
});
