import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import type { PortChanged } from '@paddock/proto';
import type { PortChange, PortEventSink } from '../src/portDetector.js';

export const docker = new Docker();
export const IMAGE = 'paddock/task:latest';

/** A container labelled as a Paddock instance, idle, with no network; removed by `remove()`. */
export async function startInstance(opts: { runtime?: string } = {}): Promise<{ id: string; container: Docker.Container; pid: number; remove(): Promise<void> }> {
  const id = `pd-${randomBytes(6).toString('hex')}`;
  const container = await docker.createContainer({
    Image: IMAGE,
    Cmd: ['sleep', '300'],
    Labels: { 'io.paddock.execution-id': id, 'io.paddock.broker-id': 'portdetect-test' },
    HostConfig: { NetworkMode: 'none', AutoRemove: false, ...(opts.runtime ? { Runtime: opts.runtime } : {}) },
  });
  await container.start();
  const pid = (await container.inspect()).State.Pid;
  return { id, container, pid, remove: () => container.remove({ force: true }).then(() => undefined, () => undefined) };
}

/**
 * Starts a TCP server in the instance (python3, in the background) on `host:port`; resolves with the epoch
 * ms at which listen() returned, as the process itself recorded it.
 */
export async function listenIn(container: Docker.Container, host: string, port: number): Promise<number> {
  const family = host.includes(':') ? 'socket.AF_INET6' : 'socket.AF_INET';
  const stamp = `/tmp/listen-${port}`;
  const script = `import socket,time\ns=socket.socket(${family})\ns.bind((${JSON.stringify(host)},${port}))\nopen('/tmp/pid-${port}','w').write(str(__import__('os').getpid()))\ns.listen()\nopen(${JSON.stringify(stamp)},'w').write(str(time.time()))\ntime.sleep(600)`;
  const exec = await container.exec({ Cmd: ['python3', '-c', script], AttachStdout: false, AttachStderr: false });
  // Detached, the engine answers at once; the answer must still be read, or its connection stays open.
  const answer = (await exec.start({ Detach: true })) as unknown as NodeJS.ReadableStream | undefined;
  answer?.resume();
  for (let i = 0; i < 100; i++) {
    const text = await run(container, ['cat', stamp]).catch(() => '');
    if (text.trim() !== '') return Math.round(Number(text) * 1000);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the server on ${host}:${port} did not start`);
}

/** Ends the servers listening on `port` in the instance. */
/**
 * Stops the server on `port` and returns once its process has ended (its socket closed with it): `kill`
 * alone returns before that. The instance's init does not reap, so an ended server stays a zombie (Z).
 */
export async function stopListening(container: Docker.Container, port: number): Promise<void> {
  const script = [
    `p=$(cat /tmp/pid-${port}) && kill "$p" && rm -f /tmp/pid-${port} /tmp/listen-${port}`,
    'for i in $(seq 200); do [ -e "/proc/$p" ] && ! grep -q "^State:.*Z" "/proc/$p/status" 2>/dev/null || break; sleep 0.02; done',
  ].join('\n');
  await run(container, ['sh', '-c', script]);
}

export async function run(container: Docker.Container, cmd: string[]): Promise<string> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await new Promise((resolve) => stream.once('end', resolve));
  const info = await exec.inspect();
  // The stream is multiplexed (8-byte frame headers): strip them.
  const raw = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let i = 0; i + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(i + 4);
    out.push(raw.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  if (info.ExitCode !== 0) throw new Error(`${cmd.join(' ')} exited ${info.ExitCode}: ${Buffer.concat(out).toString()}`);
  return Buffer.concat(out).toString();
}

/** A sink that keeps what it is given, in order, and can play back the last event as a stream would. */
export class RecordingSink implements PortEventSink {
  readonly events: { change: PortChange; event: PortChanged }[] = [];

  async last(instanceId: string): Promise<PortChanged | null> {
    return this.events.filter((e) => e.event.instanceId === instanceId).at(-1)?.event ?? null;
  }

  async publish(change: PortChange, event: PortChanged): Promise<void> {
    this.events.push({ change, event });
  }

  of(instanceId: string): { change: PortChange; event: PortChanged }[] {
    return this.events.filter((e) => e.event.instanceId === instanceId);
  }
}

export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
