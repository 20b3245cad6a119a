import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { connect, type NatsConnection } from 'nats';
import { topics } from '@paddock/bus';
import { PortChanged } from '@paddock/proto';
import { sampled, type BenchContext, type Figure, type Section } from '../section.js';

/** The instance servers are started in: a service with no network at all (the relay reaches it anyway). */
const SERVICE = { kind: 'shell', command: 'echo service-ready', service: true, network: 'none' } as const;
const FIRST_PORT = 8100;
const WAIT_MS = 10_000;
/** How long each reading of portdetect's CPU lasts, and how many there are. */
const CPU_WINDOW_MS = 5_000;
const CPU_READINGS = 3;
const CREATE_CONCURRENCY = 8;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** The bytes of a file `startServer` serves: a known text repeated, so that a client can check what it got. */
export function servedFile(bytes: number): Buffer {
  const unit = Buffer.from('paddock-bench\n');
  return Buffer.alloc(bytes, unit);
}

/**
 * A Python HTTP server on `port` inside the instance, started through the engine (as a user's process
 * would start it): prints the epoch time right after listen(), so the figures start at the real listen().
 * It speaks HTTP/1.1 (keep-alive, Content-Length on every file, TCP_NODELAY), quietly, from a folder of its own holding
 * `files` (name -> size in bytes, contents as `servedFile` makes them).
 */
export async function startServer(docker: Docker, containerId: string, port: number, files: Readonly<Record<string, number>> = {}): Promise<number> {
  for (const name of Object.keys(files)) if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new Error(`"${name}" is not a plain file name`);
  const root = `/tmp/serve-${port}`;
  const script = [
    'import functools, http.server, os, sys, time',
    `os.makedirs(${JSON.stringify(root)}, exist_ok=True)`,
    ...Object.entries(files).map(([name, bytes]) => `open(${JSON.stringify(`${root}/${name}`)}, "wb").write((b"paddock-bench\\n" * (${bytes} // 14 + 1))[:${bytes}])`),
    'class Handler(http.server.SimpleHTTPRequestHandler):',
    '    protocol_version = "HTTP/1.1"',
    // Headers and body are two writes: with Nagle's algorithm the body waits for the delayed ACK of the
    // headers (40 ms on Linux) on a kept-alive connection. Servers people run (Node, uvicorn, Go) set it.
    '    disable_nagle_algorithm = True',
    '    def log_message(self, *args): pass',
    `s = http.server.ThreadingHTTPServer(("0.0.0.0", ${port}), functools.partial(Handler, directory=${JSON.stringify(root)}))`,
    `open("/tmp/listened-${port}", "w").write(repr(time.time()))`,
    's.serve_forever()',
  ].join('\n');
  const exec = await docker.getContainer(containerId).exec({ Cmd: ['python3', '-c', script], AttachStdout: false, AttachStderr: false, WorkingDir: '/tmp' });
  const answer = (await exec.start({ Detach: true })) as unknown as NodeJS.ReadableStream | undefined;
  answer?.resume();
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const read = await docker.getContainer(containerId).exec({ Cmd: ['cat', `/tmp/listened-${port}`], AttachStdout: true, AttachStderr: false });
    const stream = await read.start({});
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((resolve) => stream.once('end', resolve));
    // Multiplexed output: 8-byte frame headers before each chunk.
    const raw = Buffer.concat(chunks);
    const text = raw.length > 8 ? raw.subarray(8).toString() : '';
    if (/^\d+\.\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
    if (Date.now() > deadline) throw new Error(`the server on port ${port} did not start within ${WAIT_MS} ms`);
    await sleep(5);
  }
}

/** Resolves with the epoch ms at which portdetect's `.opened` for `port` of `id` reached a subscriber. */
function openedEvent(nc: NatsConnection, id: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unsubscribe();
      reject(new Error(`no opened event for port ${port} of ${id} within ${WAIT_MS} ms`));
    }, WAIT_MS);
    const sub = nc.subscribe(topics.portOpened.subject(id), {
      callback: (err, msg) => {
        if (err) return;
        if (PortChanged.decode(msg.data).port !== port) return;
        clearTimeout(timer);
        sub.unsubscribe();
        resolve(Date.now());
      },
    });
  });
}

/** The status of one GET through the gateway's ingress, by Host, as the owner. */
export function getThroughIngress(ingressPort: number, host: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ingressPort, path: '/', headers: { host, authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
}

/** Epoch ms of the first 200 through the ingress, polling every 5 ms. */
export async function firstOk(ctx: BenchContext, host: string): Promise<number> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const status = await getThroughIngress(ctx.paddock.ingressPort, host, ctx.paddock.admin.token).catch(() => 0);
    if (status === 200) return Date.now();
    if (Date.now() > deadline) throw new Error(`${host} did not answer 200 within ${WAIT_MS} ms (last: ${status})`);
    await sleep(5);
  }
}

export async function containerOf(docker: Docker, executionId: string): Promise<string> {
  const [container] = await docker.listContainers({ filters: { label: [`io.paddock.execution-id=${executionId}`] } });
  if (!container) throw new Error(`no running container of execution ${executionId}`);
  return container.Id;
}

/** CPU time (user + system) a process has used, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / USER_HZ) * 1000;
}

/** Idle containers that portdetect takes for instances (they carry the label it watches), removed at the end. */
async function startIdleInstances(ctx: BenchContext, count: number): Promise<Docker.Container[]> {
  const started: Docker.Container[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const container = await ctx.docker.createContainer({
        Image: ctx.options.image,
        Cmd: ['sleep', 'infinity'],
        Labels: { ...ctx.labels, 'io.paddock.execution-id': `bench-idle-${i}-${Date.now().toString(36)}`, 'io.paddock.broker-id': 'bench-idle' },
        HostConfig: { NetworkMode: 'none', Memory: 16 * 1024 * 1024 },
      });
      started.push(container);
      await container.start();
    }
  };
  await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, worker));
  return started;
}

/**
 * Ports becoming URLs: from a server's listen() inside an instance to portdetect's event on the bus
 * (`port_detected`) and to the first 200 through the gateway's ingress (`port_routed`); then portdetect's
 * CPU while it watches `--idle-instances` (200) idle instances (`portdetect_idle_cpu`, in % of one core).
 */
export const ports: Section = {
  name: 'ports',
  async run(ctx) {
    const api = ctx.paddock.admin;
    const nc = await connect(ctx.paddock.natsOptions('paddock-bench'));
    ctx.progress('ports: starting a service instance with no network');
    const { id } = await api.submit({ ...SERVICE });
    const figures: Figure[] = [];
    try {
      await api.waitState(id, 'executing');
      const containerId = await containerOf(ctx.docker, id);
      let port = FIRST_PORT;
      const samples = await sampled(
        ctx,
        'port_detected/port_routed',
        async () => {
          const p = port++;
          const detected = openedEvent(nc, id, p);
          const listenedAt = await startServer(ctx.docker, containerId, p);
          const [seenAt, routedAt] = await Promise.all([detected, firstOk(ctx, `${id}-${p}.localhost`)]);
          return { detected: seenAt - listenedAt, routed: routedAt - listenedAt };
        },
        (s) => `seen ${s.detected.toFixed(0)} ms, routed ${s.routed.toFixed(0)} ms after listen()`,
      );
      figures.push({ name: 'port_detected', unit: 'ms', samples: samples.map((s) => s.detected) });
      figures.push({ name: 'port_routed', unit: 'ms', samples: samples.map((s) => s.routed) });
    } finally {
      await nc.close();
      const cancel = await api.request('POST', `/api/v1/executions/${id}/cancel`);
      if (cancel.status !== 202) ctx.fail(`cancelling the ports service ${id} answered ${cancel.status}`);
      else await api.waitFinal(id, 60_000);
    }

    const pid = ctx.paddock.pidOf('paddock-portdetect');
    if (pid === undefined) {
      ctx.fail('paddock-portdetect is not running');
      return figures;
    }
    ctx.progress(`portdetect_idle_cpu: starting ${ctx.options.idleInstances} idle instances`);
    const idle = await startIdleInstances(ctx, ctx.options.idleInstances);
    try {
      // Let portdetect take them all in (and the engine settle) before reading.
      await sleep(5_000);
      const readings = await sampled(
        ctx,
        'portdetect_idle_cpu',
        async () => {
          const before = await cpuMs(pid);
          await sleep(CPU_WINDOW_MS);
          return ((await cpuMs(pid)) - before) / CPU_WINDOW_MS * 100;
        },
        (percent) => `${percent.toFixed(2)} % of a core over ${CPU_WINDOW_MS / 1000} s with ${idle.length} instances`,
        { count: CPU_READINGS },
      );
      figures.push({ name: 'portdetect_idle_cpu', unit: '%', samples: readings });
    } finally {
      await Promise.all(idle.map((c) => c.remove({ force: true }).catch(() => undefined)));
    }
    return figures;
  },
};
