import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import type { Container, ContainerCreateOptions, Exec } from 'dockerode';
import { containerSpec } from '@paddock/broker';
import { ExecutionKind, NetworkMode, type ExecutionSpec } from '@paddock/proto';

const MiB = 1024 * 1024;

/**
 * What a Paddock execution gets when its request names no limits: the gateway's defaults
 * (PADDOCK_DEFAULT_CPUS=1, PADDOCK_DEFAULT_MEMORY_MB=1024) and the broker's PADDOCK_PIDS_LIMIT=512.
 */
const DEFAULT_SPEC: ExecutionSpec = {
  kind: ExecutionKind.EXECUTION_KIND_SHELL,
  command: '',
  script: '',
  files: {},
  env: {},
  image: '',
  cpuMillis: 1000,
  memoryBytes: 1024 * MiB,
  timeoutMs: 3_600_000,
  network: NetworkMode.NETWORK_MODE_NONE,
  pidsLimit: 512,
  agent: undefined,
  service: false,
  sealed: Buffer.alloc(0),
  fileRefs: {},
  scriptRef: undefined,
  diskBytes: 0,
  egress: [],
};

/**
 * A container made by the broker's own containerSpec (same image, user, init, dropped capabilities, no
 * network, limits and log driver), running `cmd` with the bench's labels: raw figures differ from Paddock's
 * only by what Paddock does around Docker.
 */
export function jobContainer(image: string, cmd: string[], labels: Readonly<Record<string, string>>): ContainerCreateOptions {
  const spec = containerSpec({
    executionId: `bench-${randomBytes(8).toString('hex')}`,
    ownerId: 'bench',
    brokerId: 'bench',
    spec: { ...DEFAULT_SPEC, image },
    image,
    // The bench's raw containers run Paddock's own image, as Paddock's jobs do: the same read-only root and mounts.
    imageIsOurs: true,
    pidsLimit: DEFAULT_SPEC.pidsLimit,
    deadlineMs: 0,
  });
  return { ...spec, Cmd: cmd, Labels: { ...labels } };
}

/** What a process wrote, split from Docker's multiplexed stream. */
export interface Output {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Reads Docker's multiplexed attach/exec stream (8-byte frame headers: stream type, three zero bytes,
 * big-endian length; frames may be split across reads) to its end. `onStdout` is called as each stdout
 * payload arrives, so a caller can time the first byte.
 */
export function readMultiplexed(stream: NodeJS.ReadableStream, onStdout: () => void = () => {}): Promise<Output> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  let pending = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const done = () => resolve({ stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
    stream.on('data', (data: Buffer) => {
      let buf = pending.length > 0 ? Buffer.concat([pending, data]) : data;
      while (buf.length >= 8) {
        const size = buf.readUInt32BE(4);
        if (buf.length < 8 + size) break;
        const payload = buf.subarray(8, 8 + size);
        if (buf[0] === 2) {
          stderr.push(payload);
        } else if (payload.length > 0) {
          stdout.push(payload);
          onStdout();
        }
        buf = buf.subarray(8 + size);
      }
      pending = Buffer.from(buf);
    });
    stream.on('end', done);
    stream.on('close', done);
    stream.on('error', reject);
  });
}

/** Runs a command in a running container to its end, as `docker exec` does, without a TTY. */
export async function execToEnd(container: Container, cmd: string[], onStdout?: () => void): Promise<Output & { exitCode: number | null }> {
  const exec: Exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ Detach: false, Tty: false });
  const output = await readMultiplexed(stream, onStdout);
  const info = await exec.inspect();
  return { ...output, exitCode: info.ExitCode };
}

/** Removes a container whatever its state; one already gone is fine. */
export async function removeContainer(container: Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}

/**
 * A job the way Paddock's broker runs one, minus Paddock: create (command as the main process), attach,
 * start, wait for the exit, remove. Throws unless the job exited 0 having written `expected`.
 */
export async function runJob(docker: Docker, image: string, cmd: string[], expected: string, labels: Readonly<Record<string, string>>): Promise<void> {
  const container = await docker.createContainer(jobContainer(image, cmd, labels));
  try {
    const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
    const output = readMultiplexed(stream);
    await container.start();
    const { StatusCode: status } = (await container.wait()) as { StatusCode: number };
    const { stdout, stderr } = await output;
    if (status !== 0 || stdout !== expected) {
      throw new Error(`exited ${status} with stdout ${JSON.stringify(stdout)} (expected ${JSON.stringify(expected)})${stderr ? `, stderr ${JSON.stringify(stderr)}` : ''}`);
    }
  } finally {
    await removeContainer(container);
  }
}
