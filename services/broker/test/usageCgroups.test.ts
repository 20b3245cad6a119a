// How the broker finds and reads an execution's cgroup on the host's kinds of cgroup setup (v1 as Docker
// hosts here run it, co-mounted v1 controllers, v2 alone), and how memory samples become MiB·ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layoutOf } from '../src/usage/cgroupLayout.js';
import { ExecutionCgroup, executionCgroupParent } from '../src/usage/executionCgroup.js';
import { MemoryIntegral } from '../src/usage/memoryIntegral.js';

const MiB = 1024 * 1024;

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;

const COMOUNTED = `25 24 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory`;

const V2_ONLY = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`;

test('the cgroup layout: v1 takes CPU from cpuacct and memory from memory, co-mounted or not; v2 alone takes both from the unified hierarchy', () => {
  const hybrid = layoutOf(HYBRID);
  assert.equal(hybrid?.version, 1);
  assert.equal(hybrid.version === 1 && hybrid.cpuacct.mountPoint, '/sys/fs/cgroup/cpuacct');
  assert.equal(hybrid.version === 1 && hybrid.memory.mountPoint, '/sys/fs/cgroup/memory');
  // The runtime makes the execution's cgroup in every hierarchy, the empty unified one included: each is removed.
  assert.deepEqual(
    hybrid.all.map((m) => m.mountPoint),
    ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpuacct', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/pids', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'],
  );

  const comounted = layoutOf(COMOUNTED);
  assert.equal(comounted?.version === 1 && comounted.cpuacct.mountPoint, '/sys/fs/cgroup/cpu,cpuacct');

  const v2 = layoutOf(V2_ONLY);
  assert.ok(v2);
  assert.equal(v2.version === 2 && v2.unified.mountPoint, '/sys/fs/cgroup');
  assert.deepEqual(v2.all.map((m) => m.mountPoint), ['/sys/fs/cgroup']);

  assert.equal(layoutOf('22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw'), null, 'no cgroups: nothing to read');
});

test('a v2 cgroup is read from cpu.stat, memory.current and memory.stat: CPU in ns, memory less inactive file cache; a missing one reads as null', async () => {
  const root = await mkdtemp(join(tmpdir(), 'paddock-cgroup-v2-'));
  try {
    const layout = layoutOf(`30 23 0:26 / ${root} rw - cgroup2 cgroup2 rw`);
    assert.ok(layout);
    const cgroup = new ExecutionCgroup(layout, executionCgroupParent('broker-1', 'exec-1'));
    assert.equal(cgroup.read(), null);
    const dir = join(root, 'paddock', 'broker-1', 'exec-1');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'cpu.stat'), 'usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n');
    await writeFile(join(dir, 'memory.current'), `${10 * MiB}\n`);
    await writeFile(join(dir, 'memory.stat'), `anon ${7 * MiB}\nfile ${3 * MiB}\nactive_file ${MiB}\ninactive_file ${2 * MiB}\n`);
    assert.deepEqual(cgroup.read(), { cpuNanos: 1_500_000_000, memoryBytes: 8 * MiB });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a cgroup path the mount does not show (a cgroup namespace rooted elsewhere) reads as missing', async () => {
  const root = await mkdtemp(join(tmpdir(), 'paddock-cgroup-ns-'));
  try {
    const layout = layoutOf(`30 23 0:26 /docker/abc ${root} rw - cgroup2 cgroup2 rw`);
    assert.ok(layout);
    assert.equal(new ExecutionCgroup(layout, executionCgroupParent('broker-1', 'exec-1')).read(), null);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('memory samples integrate to MiB·ms: the first taken back to the start, trapezoids between samples, the last held to the end', () => {
  const integral = new MemoryIntegral(0, 1_000);
  integral.add(1_500, 100 * MiB);
  assert.equal(integral.totalAt(1_500), 100 * 500);
  integral.add(2_500, 200 * MiB);
  assert.equal(integral.totalAt(2_500), 100 * 500 + 150 * 1_000);
  assert.equal(integral.totalAt(3_000), 100 * 500 + 150 * 1_000 + 200 * 500);
  // A clock that steps back adds nothing.
  integral.add(2_000, 50 * MiB);
  assert.equal(integral.totalAt(2_000), 100 * 500 + 150 * 1_000);

  const resumed = new MemoryIntegral(40_000, 10_000);
  resumed.add(12_000, 10 * MiB);
  assert.equal(resumed.totalAt(12_000), 40_000 + 10 * 2_000, 'an adopted instance goes on from the last total, its first sample taken back to it');
});
