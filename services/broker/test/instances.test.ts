import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { topics } from '@paddock/bus';
import { ExecutionKind, ExecutionSpec, ExitCause, NetworkMode, OutputStream } from '@paddock/proto';
import { artifactPath } from '../src/artifacts.js';
import type { StartedBroker } from '../src/broker.js';
import { LaunchError } from '../src/lifecycle/launchError.js';
import { containersOf } from './support/containers.js';
import { exitedOf, outputOf, startedOf, storedCount, textOf } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

const MiB = 1024 * 1024;
let t: TestBroker;
let broker: StartedBroker;

before(async () => {
  t = await setUpTestBroker('instances');
  broker = await t.start();
});
after(async () => {
  await t?.stop();
});

function launch(spec: ExecutionSpec, executionId = randomUUID()) {
  return broker.instances.launch({ executionId, ownerId: 'alice', spec });
}

function unzip(args: string[]): string {
  return execFileSync('unzip', args).toString('utf8');
}

test("a shell job's output reaches the bus in order and ends with eof; its exit follows, and its container is gone", async () => {
  const id = randomUUID();
  const reply = await launch(shellSpec('echo out-1; sleep 0.3; echo err-1 >&2; sleep 0.3; echo out-2; echo made > result.txt; exit 3'), id);
  assert.match(reply.containerId, /^[0-9a-f]{64}$/);

  const started = await startedOf(t.bus, id);
  assert.equal(started.containerId, reply.containerId);
  assert.equal(started.brokerId, t.brokerId);
  assert.equal(started.startedAtMs, reply.startedAtMs);

  const chunks = await outputOf(t.bus, id);
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), 'out-1\nout-2\n');
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDERR), 'err-1\n');
  assert.equal(textOf(chunks.filter((c) => c.stream !== OutputStream.OUTPUT_STREAM_SYSTEM)), 'out-1\nerr-1\nout-2\n');
  assert.deepEqual(chunks.map((c) => c.eof), [...chunks.slice(1).map(() => false), true]);
  for (let i = 1; i < chunks.length; i++) assert.ok(chunks[i]!.atMs >= chunks[i - 1]!.atMs, 'chunks in time order');

  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
  assert.equal(exited.exitCode, 3);
  assert.match(exited.detail, /exited with code 3/);
  assert.equal(exited.brokerId, t.brokerId);
  assert.equal(exited.startedAtMs, reply.startedAtMs);
  assert.ok(exited.finishedAtMs >= exited.startedAtMs + 600);
  assert.equal(exited.artifactsSaved, true);

  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  assert.equal(unzip(['-p', artifactPath(t.config.artifactsDir, id), 'result.txt']), 'made\n');
});

test('the job is confined: uid 1000, no capabilities, no new privileges, no network, and the limits it asked for', async () => {
  const probe = [
    'echo "user=$(id -u):$(id -g)"',
    'grep -E "^(CapEff|CapPrm|NoNewPrivs):" /proc/self/status',
    'echo "net=$(ls /sys/class/net | tr "\\n" " ")"',
    // cgroup v2 first, then v1.
    'mem=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)',
    'pids=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)',
    'cpu=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)")',
    'echo "mem=$mem pids=$pids cpu=$cpu"',
    'echo "pwd=$(pwd) foo=$FOO"',
  ].join('; ');
  const confined = randomUUID();
  const bridged = randomUUID();
  await Promise.all([
    launch(shellSpec(probe, { cpuMillis: 500, memoryBytes: 128 * MiB, pidsLimit: 100, env: { FOO: 'bar' } }), confined),
    launch(shellSpec('ls /sys/class/net; if grep -q host.docker.internal /etc/hosts; then echo host-named; fi', { network: NetworkMode.NETWORK_MODE_BRIDGE }), bridged),
  ]);

  const out = textOf(await outputOf(t.bus, confined));
  assert.match(out, /^user=1000:1000$/m);
  assert.match(out, /^CapEff:\s+0+$/m);
  assert.match(out, /^CapPrm:\s+0+$/m);
  assert.match(out, /^NoNewPrivs:\s+1$/m);
  assert.match(out, /^net=lo $/m);
  assert.match(out, new RegExp(`^mem=${128 * MiB} pids=100 cpu=50000 100000$`, 'm'));
  assert.match(out, /^pwd=\/workspace foo=bar$/m);

  const net = textOf(await outputOf(t.bus, bridged));
  assert.match(net, /^eth0$/m);
  // A network of its own, where the host is not even named unless PADDOCK_INSTANCE_HOST_PORTS opens some of it.
  assert.doesNotMatch(net, /host-named/);
  assert.equal((await exitedOf(t.bus, bridged)).exitCode, 0);
});

test("a Python job runs its script against the request's files; what it writes is in the artifacts", async () => {
  const id = randomUUID();
  const script = [
    'import pathlib, sys',
    'text = pathlib.Path("data/in.txt").read_text()',
    'print(text.upper())',
    'print("to stderr", file=sys.stderr)',
    'pathlib.Path("out").mkdir()',
    'pathlib.Path("out/result.txt").write_text(text[::-1])',
  ].join('\n');
  await launch(
    ExecutionSpec.fromPartial({
      ...shellSpec(''),
      kind: ExecutionKind.EXECUTION_KIND_PYTHON,
      script,
      files: { 'data/in.txt': Buffer.from('hello') },
    }),
    id,
  );
  const chunks = await outputOf(t.bus, id);
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), 'HELLO\n');
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDERR), 'to stderr\n');
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
  assert.equal(exited.exitCode, 0);
  assert.equal(exited.detail, '');
  const zip = artifactPath(t.config.artifactsDir, id);
  assert.deepEqual(unzip(['-Z1', zip]).trim().split('\n').sort(), ['data/', 'data/in.txt', 'out/', 'out/result.txt']);
  assert.equal(unzip(['-p', zip, 'out/result.txt']), 'olleh');
});

test('launch is idempotent: the same execution id, even at once, runs one container and ends once', async () => {
  const id = randomUUID();
  const spec = shellSpec('sleep 2; echo once');
  const [a, b] = await Promise.all([launch(spec, id), launch(spec, id)]);
  assert.equal(a.containerId, b.containerId);
  const again = await launch(spec, id);
  assert.equal(again.containerId, a.containerId);
  assert.equal((await containersOf(t.docker, t.brokerId, id)).length, 1);

  await exitedOf(t.bus, id);
  const afterEnd = await launch(spec, id);
  assert.equal(afterEnd.containerId, a.containerId);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);

  assert.equal(textOf(await outputOf(t.bus, id)), 'once\n');
  assert.equal(await storedCount(t.bus, topics.instanceStarted, id), 1);
  assert.equal(await storedCount(t.bus, topics.instanceExited, id), 1);
  assert.equal(await storedCount(t.bus, topics.output, id), 2, 'one chunk of output and the eof');
});

test('an image the engine does not have fails the launch, and the failure is published', async () => {
  const id = randomUUID();
  const image = 'localhost/paddock-test-absent:never';
  await assert.rejects(launch(shellSpec('true', { image }), id), (err: unknown) => {
    assert.ok(err instanceof LaunchError);
    assert.equal(err.code, GrpcStatus.FAILED_PRECONDITION);
    assert.match(err.details, /localhost\/paddock-test-absent:never is not in the Docker engine/);
    return true;
  });
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_PROVISIONING_FAILED);
  assert.equal(exited.exitCode, undefined);
  assert.equal(exited.artifactsSaved, false);
  assert.match(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_SYSTEM), /\[paddock\] could not start the job: image localhost\/paddock-test-absent/);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
});

test('nothing labelled with this broker id is left behind', async () => {
  assert.deepEqual(await containersOf(t.docker, t.brokerId), []);
  // The count drops just after the exit is published (the row is marked ended in between).
  for (let i = 0; i < 50 && broker.instances.running > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(broker.instances.running, 0);
});
