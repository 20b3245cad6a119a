import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecutionKind, ExecutionSpec, NetworkMode } from '@paddock/proto';
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
  };
}

test('a job runs as uid 1000 with every capability dropped, no privilege escalation, under an init', () => {
  const c = containerSpec(input({}));
  assert.equal(c.User, '1000:1000');
  assert.deepEqual(c.HostConfig?.CapDrop, ['ALL']);
  assert.equal(c.HostConfig?.CapAdd, undefined);
  assert.ok(c.HostConfig?.SecurityOpt?.includes('no-new-privileges'));
  assert.notEqual(c.HostConfig?.Privileged, true);
  assert.equal(c.HostConfig?.Init, true);
  assert.equal(c.WorkingDir, '/workspace');
  assert.equal(c.Image, 'paddock/base:latest');
});

test('CPU, memory (with no swap beyond it) and pids are limited as the spec asks', () => {
  const c = containerSpec(input({ cpuMillis: 1500, memoryBytes: 256 * MiB, pidsLimit: 64 }));
  assert.equal(c.HostConfig?.NanoCpus, 1_500_000_000);
  assert.equal(c.HostConfig?.Memory, 256 * MiB);
  assert.equal(c.HostConfig?.MemorySwap, 256 * MiB);
  assert.equal(c.HostConfig?.PidsLimit, 64);
});

test("the broker's pids limit applies when the spec sets none", () => {
  assert.equal(containerSpec(input({ pidsLimit: 0 }, { pidsLimit: 512 })).HostConfig?.PidsLimit, 512);
});

test('no network unless bridge is asked; bridge can reach the host as host.docker.internal', () => {
  for (const network of [NetworkMode.NETWORK_MODE_UNSPECIFIED, NetworkMode.NETWORK_MODE_NONE]) {
    const c = containerSpec(input({ network }));
    assert.equal(c.HostConfig?.NetworkMode, 'none');
    assert.equal(c.HostConfig?.ExtraHosts, undefined);
  }
  const bridge = containerSpec(input({ network: NetworkMode.NETWORK_MODE_BRIDGE }));
  assert.equal(bridge.HostConfig?.NetworkMode, 'bridge');
  assert.deepEqual(bridge.HostConfig?.ExtraHosts, ['host.docker.internal:host-gateway']);
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
  assert.deepEqual(python.Cmd, ['python3', '-u', '/opt/paddock/main.py']);
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
