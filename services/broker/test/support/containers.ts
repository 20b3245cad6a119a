import { readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { ContainerInfo } from 'dockerode';
import { labels } from '../../src/providers/docker/labels.js';
import { cgroupLayout, folderOf } from '../../src/usage/cgroupLayout.js';
import { brokerCgroups } from '../../src/usage/executionCgroup.js';

/** Every container (running or not) labelled with this broker id. */
export function containersOf(docker: Docker, brokerId: string, executionId?: string): Promise<ContainerInfo[]> {
  const label = [`${labels.brokerId}=${brokerId}`];
  if (executionId) label.push(`${labels.executionId}=${executionId}`);
  return docker.listContainers({ all: true, filters: { label } });
}

/** Removes what a test left behind; only ever the containers of this test's broker id. */
export async function removeContainersOf(docker: Docker, brokerId: string): Promise<void> {
  for (const c of await containersOf(docker, brokerId)) {
    await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {});
  }
  // And the per-execution parent cgroups of its containers (empty once they are gone), then the broker's own.
  for (const mount of cgroupLayout()?.all ?? []) {
    const dir = folderOf(mount, brokerCgroups(brokerId));
    if (dir === null) continue;
    const executions = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of executions) if (e.isDirectory()) await rmdir(join(dir, e.name)).catch(() => {});
    await rmdir(dir).catch(() => {});
  }
}

/** Waits until the container of an execution has stopped running. */
export async function waitUntilExited(docker: Docker, brokerId: string, executionId: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [c] = await containersOf(docker, brokerId, executionId);
    if (c && c.State === 'exited') return;
    if (Date.now() > deadline) throw new Error(`container of ${executionId} still ${c?.State ?? 'missing'}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
