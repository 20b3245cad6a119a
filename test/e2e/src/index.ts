import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';

const run = promisify(execFile);

export const docker = new Docker();

/** The entries of a ZIP archive and a way to read one, through Debian's unzip (a reader independent of ours). */
export async function readZip(bytes: Buffer): Promise<{ names: string[]; read(name: string): Promise<string>; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'paddock-zip-'));
  const file = join(dir, 'a.zip');
  await writeFile(file, bytes);
  const { stdout } = await run('unzip', ['-Z1', file]);
  return {
    names: stdout.split('\n').filter((line) => line !== ''),
    read: async (name) => (await run('unzip', ['-p', file, name])).stdout,
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Containers Paddock made for an execution (any state). */
export async function containersOf(executionId: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`io.paddock.execution-id=${executionId}`] } });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * An image that has nothing of Paddock's: a few of this host's programs and their libraries, imported as
 * `tag`, idling on `sleep infinity`. Built once per engine.
 */
export async function buildForeignImage(tag: string): Promise<void> {
  try {
    await docker.getImage(tag).inspect();
    return;
  } catch {
    // not there yet: built below
  }
  const programs = ['/bin/sh', '/bin/sleep', '/bin/cat', '/bin/echo', '/usr/bin/id', '/bin/ls'];
  const { stdout } = await run('ldd', programs);
  const libraries = [...new Set(stdout.match(/\/[^\s:]+\.so[^\s:]*/g) ?? [])];
  const root = await mkdtemp(join(tmpdir(), 'paddock-foreign-'));
  try {
    await run('bash', [
      '-c',
      `set -e; cd ${root}; for f in ${[...programs, ...libraries].join(' ')}; do mkdir -p ".$(dirname "$f")"; cp -L "$f" ".$f"; done; mkdir -p tmp && chmod 1777 tmp; ` +
        `tar -C ${root} -c . | docker import -c 'CMD ["/bin/sleep", "infinity"]' - ${tag} >/dev/null`,
    ]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
export { sshRun, type SshAccess } from './sshRun.js';
